/** A host whose SSH key was refused: unknown (without --accept-new-host-keys), changed or revoked. */
export class HostKeyError extends Error {
  constructor(
    readonly host: string,
    message: string,
    readonly hint: string,
  ) {
    super(message);
    this.name = 'HostKeyError';
  }
}

/** The host could not be reached or logged in to, or the connection dropped. */
export class ConnectError extends Error {
  constructor(
    readonly host: string,
    message: string,
    readonly hint: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'ConnectError';
  }
}
