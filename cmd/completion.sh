#!/bin/sh
# Writes the bash completion of an mm tool on standard output, made from its option table:
# `TOOL --list-options` prints every flag, each with the metavariable of its value, and the
# positional arguments. A value of names (crop|pad|stretch) completes to those names, DIR to a
# directory, FILE, PATTERN, PREFIX and CKPT to a file; numbers and text complete to nothing.
# usage: sh cmd/completion.sh cmd/mm-train >share/bash-completion/completions/mm-train
set -eu
tool=$1
name=$(basename "$tool")
fn=_$(echo "$name" | tr -- '-' '_')
list=$("$tool" --list-options)
flags=$(echo "$list" | grep '^-' | cut -d' ' -f1 | tr '\n' ' ' | sed 's/ $//')
positional=$(echo "$list" | grep -v '^-' | head -n 1)
cases=$(echo "$list" | grep '^-[^ ]* ' | awk '
	{ flag = $1; mv = $2 }
	mv ~ /^[a-z0-9]+(\|[a-z0-9]+)+$/ { gsub(/\|/, " ", mv); words[mv] = words[mv] "|" flag; next }
	mv == "DIR" { dirs = dirs "|" flag; next }
	mv ~ /FILE|PATTERN|PREFIX|CKPT/ { files = files "|" flag; next }
	{ none = none "|" flag }
	END {
		for (w in words) printf "\t%s) COMPREPLY=($(compgen -W \047%s\047 -- \"$cur\")) ;;\n", substr(words[w], 2), w
		if (dirs) printf "\t%s) COMPREPLY=($(compgen -d -- \"$cur\")) ;;\n", substr(dirs, 2)
		if (files) printf "\t%s) COMPREPLY=($(compgen -f -- \"$cur\")) ;;\n", substr(files, 2)
		if (none) printf "\t%s) ;;\n", substr(none, 2)
	}' | sort)
if [ -n "$positional" ]; then
	args='COMPREPLY=($(compgen -f -- "$cur"))'
else
	args=':'
fi
cat <<SH
# bash completion for $name, made by cmd/completion.sh from $name --list-options
$fn()
{
	local cur=\${COMP_WORDS[COMP_CWORD]} prev=\${COMP_WORDS[COMP_CWORD-1]}
	COMPREPLY=()
	case \$prev in
$cases
	*)
		case \$cur in
		-*) COMPREPLY=(\$(compgen -W '$flags' -- "\$cur")) ;;
		*) $args ;;
		esac
		;;
	esac
}
complete -o filenames -F $fn $name
SH
