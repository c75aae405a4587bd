import { createHash } from 'node:crypto';
import { addressFamily, normalizeAddress } from '../core/address.js';
import { headerLine, SHARED_HEADER } from '../core/ownership.js';

/**
 * The guard: an nftables table of provision's own, one per fleet, that drops packets to a
 * peer that the kernel would not protect with IPsec (`rt ipsec missing`) and packets from
 * a peer that arrived unprotected (`meta ipsec missing`). IKE, ESP and IPv6 neighbour
 * discovery pass. It lives below the IKE daemon, so no restart, upgrade or reboot of the
 * daemon can make a pair send clear text: the traffic stops instead. Peers live in named
 * sets; a peer joins before the daemons load its pair, so no first negotiation leaks either.
 * The SSH path to the host, when it comes from a peer (the controller or a jump host is
 * one), stays open.
 */
export const GUARD_DIR = '/etc/provision';
export const GUARD_UNIT = '/etc/systemd/system/provision-guard.service';

export function guardFile(fleet: string): string {
  return `${GUARD_DIR}/guard-${fleet}.nft`;
}

/** nftables names take letters, digits and underscores: a fleet with other characters gets a short hash too. */
export function guardTable(fleet: string): string {
  const safe = fleet.replace(/[^A-Za-z0-9_]/g, '_');
  return safe === fleet ? `provision_${fleet}` : `provision_${safe}_${createHash('sha256').update(fleet).digest('hex').slice(0, 4)}`;
}

interface GuardSets {
  /** Peers whose unprotected traffic is dropped. */
  peers: string[];
  /** Addresses the host's SSH sessions come from that are peers: their SSH stays reachable. */
  ssh: string[];
  /** The port sshd listens on for them. */
  sshPort: number;
  /** Peers this host reaches over SSH for the tool, and their sshd port: that path stays open. */
  sshTo?: readonly { address: string; port: number }[];
}

// Neighbour discovery between peers, outside IPsec (the address resolution IPsec itself
// needs): solicitations and advertisements only, and only as sent on-link (hop limit 255,
// RFC 4861); router solicitations and advertisements from a peer are dropped like the rest.
const ND = 'icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert } ip6 hoplimit 255 accept';

function elements(addrs: readonly string[], family: 4 | 6): string {
  const of = [...new Set(addrs.filter((a) => addressFamily(a) === family).map(normalizeAddress))].sort();
  return of.length ? ` elements = { ${of.join(', ')} };` : '';
}

function services(to: readonly { address: string; port: number }[], family: 4 | 6): string {
  const of = [...new Set(to.filter((t) => addressFamily(t.address) === family).map((t) => `${normalizeAddress(t.address)} . ${Math.trunc(t.port)}`))].sort();
  return of.length ? ` elements = { ${of.join(', ')} };` : '';
}

/** The guard file: loaded at boot before the IKE daemon, and by each run that changes it. Replaces the table atomically. */
export function renderGuard(fleet: string, sets: GuardSets): string {
  const t = guardTable(fleet);
  return `${headerLine(fleet)}
# The guard of fleet ${fleet}: no packet to or from its peers without IPsec. Inspect it with
# \`nft list table inet ${t}\`; \`guard: off\` in the inventory removes it.
table inet ${t}
delete table inet ${t}
table inet ${t} {
  set peers4 { type ipv4_addr;${elements(sets.peers, 4)} }
  set peers6 { type ipv6_addr;${elements(sets.peers, 6)} }
  set ssh4 { type ipv4_addr;${elements(sets.ssh, 4)} }
  set ssh6 { type ipv6_addr;${elements(sets.ssh, 6)} }
${
  sets.sshTo?.length
    ? `  set sshto4 { type ipv4_addr . inet_service;${services(sets.sshTo, 4)} }
  set sshto6 { type ipv6_addr . inet_service;${services(sets.sshTo, 6)} }
`
    : ''
}  chain output {
    type filter hook output priority filter; policy accept;
    meta l4proto esp accept
    udp sport { 500, 4500 } accept
    udp dport { 500, 4500 } accept
    ip daddr @ssh4 tcp sport ${sets.sshPort} accept
    ip6 daddr @ssh6 tcp sport ${sets.sshPort} accept
${
  sets.sshTo?.length
    ? `    ip daddr . tcp dport @sshto4 accept
    ip6 daddr . tcp dport @sshto6 accept
`
    : ''
}    ${ND}
    ip daddr @peers4 rt ipsec missing counter drop
    ip6 daddr @peers6 rt ipsec missing counter drop
  }
  chain input {
    type filter hook input priority filter; policy accept;
    meta l4proto esp accept
    udp sport { 500, 4500 } accept
    udp dport { 500, 4500 } accept
    ip saddr @ssh4 tcp dport ${sets.sshPort} accept
    ip6 saddr @ssh6 tcp dport ${sets.sshPort} accept
${
  sets.sshTo?.length
    ? `    ip saddr . tcp sport @sshto4 accept
    ip6 saddr . tcp sport @sshto6 accept
`
    : ''
}    ${ND}
    ip saddr @peers4 meta ipsec missing counter drop
    ip6 saddr @peers6 meta ipsec missing counter drop
  }
}
`;
}

/** The peers and ports a guard file of ours lets this host's SSH reach (its sshto sets). */
export function guardSshTo(content: string | undefined): { address: string; port: number }[] {
  if (!content) return [];
  return ['sshto4', 'sshto6'].flatMap((set) => {
    const m = new RegExp(`set ${set} \\{[^}]*?elements = \\{ ([^}]*) \\}`).exec(content);
    return m
      ? m[1]!
          .split(',')
          .map((e) => /^\s*(\S+) \. (\d+)\s*$/.exec(e))
          .filter((x): x is RegExpExecArray => Boolean(x))
          .map((x) => ({ address: normalizeAddress(x[1]!), port: Number(x[2]) }))
      : [];
  });
}

/** The peers a guard file of ours holds now. */
export function guardPeers(content: string | undefined): string[] {
  if (!content) return [];
  return ['peers4', 'peers6'].flatMap((set) => {
    const m = new RegExp(`set ${set} \\{[^}]*?elements = \\{ ([^}]*) \\}`).exec(content);
    return m
      ? m[1]!
          .split(',')
          .map((a) => a.trim())
          .filter(Boolean)
      : [];
  });
}

/**
 * The unit that loads every fleet's guard at boot, before the network and the IKE daemon,
 * and again whenever nftables.service restarts or reloads (its rules start with `flush
 * ruleset`, which would drop ours). Shared by the fleets on the host.
 */
const LOAD_ALL = `/bin/sh -c 'rc=0; for f in ${GUARD_DIR}/*.nft; do [ -e "$f" ] || continue; /usr/sbin/nft -f "$f" || rc=1; done; exit $rc'`;

export function renderGuardUnit(): string {
  return `${SHARED_HEADER}
[Unit]
Description=provision: drop traffic to IPsec peers that IPsec does not protect (nftables)
DefaultDependencies=no
After=local-fs.target nftables.service
Before=network-pre.target ipsec.service strongswan-starter.service strongswan.service shutdown.target
Wants=network-pre.target
PartOf=nftables.service
ReloadPropagatedFrom=nftables.service
Conflicts=shutdown.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=${LOAD_ALL}
ExecReload=${LOAD_ALL}

[Install]
WantedBy=sysinit.target
`;
}
