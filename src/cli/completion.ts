import { COMMANDS, KNOWN_FLAGS } from './args.js';

/** A completion script for bash or zsh: commands, flags, and files after --inventory, --out, apply. */
export function completionScript(shell: string): string {
  const flags = KNOWN_FLAGS.map((f) => `--${f}`).join(' ');
  const commands = COMMANDS.join(' ');
  const bash = `# provision completion for bash: source it, or put it in /etc/bash_completion.d/provision
_provision() {
  local cur prev
  cur="\${COMP_WORDS[COMP_CWORD]}"
  prev="\${COMP_WORDS[COMP_CWORD-1]}"
  case "$prev" in
    -i|--inventory|--out|--ssh-config|apply) COMPREPLY=( $(compgen -f -- "$cur") ); return ;;
    --format) COMPREPLY=( $(compgen -W "text json prometheus" -- "$cur") ); return ;;
  esac
  if [ "$COMP_CWORD" -eq 1 ] && [[ "$cur" != -* ]]; then COMPREPLY=( $(compgen -W "${commands}" -- "$cur") ); return; fi
  COMPREPLY=( $(compgen -W "${flags} -i -h" -- "$cur") )
}
complete -o default -F _provision provision
`;
  if (shell !== 'zsh') return bash;
  return `#compdef provision
# provision completion for zsh: put it in a folder of $fpath as _provision, or source it
autoload -U +X bashcompinit && bashcompinit
${bash}`;
}
