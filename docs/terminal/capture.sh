#!/bin/bash
# Screen captures of `flushbench run --suite smoke` in tmux at 80x30 and 100x30: the screen
# mid-run (finished trials above the live bar, the ETA) and the whole scrollback at the end.
#   docs/terminal/capture.sh            (flushbench on PATH, tmux installed)
set -euo pipefail
cd "$(dirname "$0")"
command -v tmux >/dev/null || { echo "capture.sh: tmux is not installed (apt-get install tmux)"; exit 2; }
command -v flushbench >/dev/null || { echo "capture.sh: flushbench is not on PATH (pip install -e .)"; exit 2; }
for width in 80 100; do
    session="fb-capture-$$-$width"
    out="$(mktemp -d)"
    tmux new-session -d -s "$session" -x "$width" -y 30 "bash --norc --noprofile"
    trap 'tmux kill-session -t "$session" 2>/dev/null || true; rm -rf "$out"' EXIT
    tmux set-option -t "$session" history-limit 5000 >/dev/null
    tmux send-keys -t "$session" "clear; flushbench run --suite smoke -o $out/run; echo __END__" Enter
    sleep 4
    tmux capture-pane -p -t "$session" > "mid-$width.txt"
    for _ in $(seq 1 300); do  # bounded: the smoke suite takes about 12 s
        sleep 1
        tmux capture-pane -p -t "$session" -S - | grep -q "^__END__" && break
    done
    tmux capture-pane -p -t "$session" -S - | sed '/^__END__/,$d' > "end-$width.txt"
    tmux kill-session -t "$session"
    rm -rf "$out"
    trap - EXIT
    {
        echo "flushbench run --suite smoke, tmux ${width}x30"
        echo
        echo "--- the screen 4 s in -----------------------------------------------------"
        sed -e 's/[[:space:]]*$//' "mid-$width.txt" | sed -e :a -e '/^\n*$/{$d;N;ba' -e '}'
        echo "--- the whole scrollback at the end ---------------------------------------"
        sed -e 's/[[:space:]]*$//' -e "s|$out/run|runs/smoke|g" "end-$width.txt"
    } > "smoke-${width}x30.txt"
    rm -f "mid-$width.txt" "end-$width.txt"
done
echo "wrote docs/terminal/smoke-80x30.txt and smoke-100x30.txt"
