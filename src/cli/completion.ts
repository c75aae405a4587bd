import { COMMANDS, KNOWN_FLAGS } from './args.js';

/** A completion script for bash, zsh or fish: commands, flags, and files after --inventory, --out, apply. */
export function completionScript(shell: string): string {
  if (shell === 'fish') return fish();
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

/** fish: the commands, every flag, files and choices where a flag takes them. */
function fish(): string {
  const lines = [
    '# provision completion for fish: put it in ~/.config/fish/completions/provision.fish',
    'complete -c provision -f',
    `complete -c provision -n __fish_use_subcommand -a '${COMMANDS.join(' ')}'`,
    "complete -c provision -s i -l inventory -r -F -d 'the YAML inventory'",
    "complete -c provision -l out -r -F -d 'save the plan to this file'",
    "complete -c provision -l ssh-config -r -F -d 'an OpenSSH client config'",
    "complete -c provision -l trace -r -F -d 'record commands and answers'",
    "complete -c provision -l format -x -a 'text json prometheus'",
    "complete -c provision -l detail -x -a 'summary hosts full'",
    "complete -c provision -l rotate-mode -x -a 'reauth reread'",
    "complete -c provision -n '__fish_seen_subcommand_from apply' -F",
    "complete -c provision -n '__fish_seen_subcommand_from completion' -x -a 'bash zsh fish'",
  ];
  const withArg = new Set(['inventory', 'out', 'ssh-config', 'trace', 'format', 'detail', 'rotate-mode']);
  for (const f of KNOWN_FLAGS) if (!withArg.has(f)) lines.push(`complete -c provision -l ${f}`);
  return `${lines.join('\n')}\n`;
}
