# bash completion for clusterd(1): subcommands, options, the values of options that take a fixed
# set, files for --config, and after PROGRAM whatever PROGRAM's own completion offers.
# Needs bash-completion (_init_completion, _filedir, _command_offset). The option lists are checked
# against `clusterd --help` by tests/integration/test_packaging.py.

# COMPREPLY=($(compgen ...)) is bash-completion's own idiom: the words offered here hold no blanks,
# and where paths may, IFS is a newline.
# shellcheck disable=SC2207

_clusterd_subcommands='check status reload scale restart stop metrics ls top logs upgrade'

# The options that take a value (in the next word, or after "=").
_clusterd_value_options='-c --config -w --workers -l --listen --ready --ready-timeout --grace
    --stop-signal --output --control --name --log-level --log-file --set --interval --slot -n --lines --binary'

_clusterd_run_options='-h --help --version -c --config --name -w --workers -l --listen --ready
    --ready-timeout --grace --stop-signal --output --control --log-level --log-file --set'
_clusterd_client_options='-h --help -c --config --name --control --json'
_clusterd_logs_options='--slot -n --lines -f --follow -t --timestamps'

# Signal names as stop.signal takes them (src/config_signals.cpp).
_clusterd_signals='HUP INT QUIT ILL TRAP ABRT BUS FPE KILL USR1 SEGV USR2 PIPE ALRM TERM STKFLT
    CHLD CONT STOP TSTP TTIN TTOU URG XCPU XFSZ VTALRM PROF WINCH IO PWR SYS'

# Every key --set takes, but listen.* (only --listen sets listeners) and env.NAME (any NAME).
_clusterd_keys='name workers command directory user group output inherit_env env.
    restart.policy restart.delay restart.max_delay restart.multiplier restart.reset_after
    restart.burst restart.interval ready.mode ready.timeout ready.watchdog stop.signal stop.grace
    reload.batch recycle.max_lifetime recycle.max_rss recycle.check_interval control.socket
    output.mode output.file output.timestamps output.max_size output.keep output.recent_lines
    metrics.listen log.level log.file'

# Names of the instances whose control sockets are in the default directories (interface §4.4),
# for --name.
_clusterd_instance_names()
{
    local dir socket
    for dir in "${RUNTIME_DIRECTORY%%:*}" "${XDG_RUNTIME_DIR:+$XDG_RUNTIME_DIR/clusterd}" \
        /run/clusterd "/tmp/clusterd-$UID"; do
        [[ -n $dir && -d $dir ]] || continue
        for socket in "$dir"/*.sock; do
            [[ -S $socket ]] && socket=${socket##*/} && printf '%s\n' "${socket%.sock}"
        done
    done
}

# The index in COMP_WORDS of words[$1]: _init_completion joined words that readline split at ":"
# and "=" (unix:/run/a.sock, --set a=b), and _command_offset counts in COMP_WORDS.
_clusterd_raw_index()
{
    local joined=0 raw=0 text=""
    while ((joined < $1 && raw < ${#COMP_WORDS[@]})); do
        text+=${COMP_WORDS[raw]}
        ((raw++))
        if [[ $text == "${words[joined]}" ]]; then
            text=""
            ((joined++))
        fi
    done
    echo "$raw"
}

_clusterd()
{
    local cur prev words cword split
    _init_completion -s -n : || return

    # Find the subcommand and PROGRAM in the words before the cursor. Option parsing stops at
    # PROGRAM, so from there on the words are PROGRAM's own.
    local i word subcommand="" scale_count="" program=""
    for ((i = 1; i < cword; i++)); do
        word=${words[i]}
        case $word in
            --)
                program=$((i + 1))
                break
                ;;
            --*=*) ;;
            -*)
                [[ " ${_clusterd_value_options//$'\n'/ } " == *" $word "* ]] && ((i++))
                ;;
            *)
                if [[ -z $subcommand && " $_clusterd_subcommands " == *" $word "* ]]; then
                    subcommand=$word
                elif [[ ($subcommand == scale || $subcommand == restart) && -z $scale_count ]]; then
                    scale_count=$word
                elif [[ -z $subcommand || $subcommand == check ]]; then
                    program=$i
                    break
                fi
                ;;
        esac
    done
    if [[ -n $program ]]; then
        _command_offset "$(_clusterd_raw_index "$program")"
        return
    fi

    case $prev in
        -c | --config | --log-file | --binary)
            _filedir
            return
            ;;
        --control)
            COMPREPLY=($(compgen -W 'none' -- "$cur"))
            _filedir
            return
            ;;
        -w | --workers)
            COMPREPLY=($(compgen -W 'auto' -- "$cur"))
            return
            ;;
        --ready)
            COMPREPLY=($(compgen -W 'exec notify' -- "$cur"))
            return
            ;;
        --output)
            COMPREPLY=($(compgen -W 'inherit prefix' -- "$cur"))
            return
            ;;
        --log-level)
            COMPREPLY=($(compgen -W 'trace debug info warn error' -- "$cur"))
            return
            ;;
        --stop-signal)
            COMPREPLY=($(compgen -W "$_clusterd_signals" -- "$cur"))
            return
            ;;
        --name)
            COMPREPLY=($(compgen -W "$(_clusterd_instance_names)" -- "$cur"))
            return
            ;;
        --set)
            # KEY= and no space: the value follows.
            [[ $cur == *=* ]] && return
            COMPREPLY=($(compgen -W "$_clusterd_keys" -- "$cur"))
            COMPREPLY=("${COMPREPLY[@]/%/=}")
            COMPREPLY=("${COMPREPLY[@]/#env.=/env.}")
            compopt -o nospace
            return
            ;;
        -l | --listen | --ready-timeout | --grace | --interval)
            return # an address or a duration: nothing to offer
            ;;
    esac
    [[ $split == true ]] && return

    case $subcommand in
        "")
            if [[ $cur == -* ]]; then
                COMPREPLY=($(compgen -W "$_clusterd_run_options --json --pss --interval $_clusterd_logs_options --binary" -- "$cur"))
            else
                # The subcommand words, or PROGRAM once something is typed.
                COMPREPLY=($(compgen -W "$_clusterd_subcommands" -- "$cur"))
                if [[ -n $cur ]]; then
                    local IFS=$'\n'
                    COMPREPLY+=($(compgen -d -c -- "$cur"))
                    compopt -o filenames
                fi
            fi
            ;;
        check)
            if [[ $cur == -* ]]; then
                COMPREPLY=($(compgen -W "$_clusterd_run_options" -- "$cur"))
            else
                local IFS=$'\n'
                COMPREPLY=($(compgen -d -c -- "$cur"))
                compopt -o filenames
            fi
            ;;
        ls)
            [[ $cur == -* ]] && COMPREPLY=($(compgen -W '-h --help --json' -- "$cur"))
            ;;
        status)
            [[ $cur == -* ]] && COMPREPLY=($(compgen -W "$_clusterd_client_options --pss" -- "$cur"))
            ;;
        top)
            [[ $cur == -* ]] && COMPREPLY=($(compgen -W '-h --help -c --config --name --control --interval' -- "$cur"))
            ;;
        logs)
            [[ $cur == -* ]] && COMPREPLY=($(compgen -W "$_clusterd_client_options $_clusterd_logs_options" -- "$cur"))
            ;;
        upgrade)
            [[ $cur == -* ]] && COMPREPLY=($(compgen -W "$_clusterd_client_options --binary" -- "$cur"))
            ;;
        restart)
            if [[ $cur == -* ]]; then
                COMPREPLY=($(compgen -W "$_clusterd_client_options" -- "$cur"))
            else
                COMPREPLY=($(compgen -W 'all' -- "$cur"))
            fi
            ;;
        *)
            [[ $cur == -* ]] && COMPREPLY=($(compgen -W "$_clusterd_client_options" -- "$cur"))
            ;;
    esac
} &&
    complete -F _clusterd clusterd
