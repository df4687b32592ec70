package static

// The remote steps, each a sh script run with positional arguments;
// each is idempotent, so a rerun after a crash completes what exists.

// prelude defines alive PID (a live process: zombies, which a host
// whose init does not reap leaves behind, are dead) and group_alive
// PGID (some live process is in the group).
const prelude = `
alive() { [ -n "$1" ] && [ -r "/proc/$1/status" ] && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null; }
group_alive() {
	for f in /proc/[0-9]*/status; do
		if grep -q "^NSpgid:[[:space:]]*$1\$" "$f" 2>/dev/null && ! grep -q '^State:[[:space:]]*Z' "$f" 2>/dev/null; then return 0; fi
	done
	return 1
}
`

// probeScript prints the OS, the architecture, and the install state of
// directory $1: "absent", or "running TOKEN" / "stopped TOKEN".
const probeScript = prelude + `
uname -s; uname -m
d=$1
if [ ! -d "$d" ]; then echo absent; exit 0; fi
t=$(cat "$d/token" 2>/dev/null)
if [ -s "$d/unit" ]; then
	if systemctl is-active --quiet "$(cat "$d/unit")"; then echo "running $t"; else echo "stopped $t"; fi
	exit 0
fi
p=$(cat "$d/pid" 2>/dev/null)
if alive "$p"; then echo "running $t"; else echo "stopped $t"; fi
`

// prepareScript makes install_dir $1 (marking it as made by hvctl when it
// did not exist) and the node's directory $2 with its token $3.
const prepareScript = `
set -e
umask 077
if [ ! -d "$1" ]; then mkdir -p "$1"; : > "$1/.hvctl-made"; fi
mkdir -p "$2"
printf '%s\n' "$3" > "$2/token.new"
mv -f "$2/token.new" "$2/token"
command -v setsid >/dev/null || { echo "setsid (util-linux) is not installed" >&2; exit 1; }
`

// uploadScript writes stdin to $1 with mode $2, atomically.
const uploadScript = `
set -e
umask 077
cat > "$1.new"
chmod "$2" "$1.new"
mv -f "$1.new" "$1"
`

// startScript starts the agent of directory $1 unless it runs: as the
// systemd unit $2 (its text on stdin) where systemd runs and we are root,
// else under a supervisor in its own session whose pid file is $1/pid.
const startScript = prelude + `
set -e
d=$1
if [ -s "$d/unit" ] && systemctl is-active --quiet "$(cat "$d/unit")"; then exit 0; fi
p=$(cat "$d/pid" 2>/dev/null || true)
if alive "$p"; then exit 0; fi
if [ -d /run/systemd/system ] && [ "$(id -u)" = 0 ] && command -v systemctl >/dev/null; then
	cat > "/etc/systemd/system/$2.new"
	mv -f "/etc/systemd/system/$2.new" "/etc/systemd/system/$2"
	printf '%s\n' "$2" > "$d/unit"
	systemctl daemon-reload
	systemctl enable --now "$2"
	exit 0
fi
rm -f "$d/pid"
setsid -f sh -c 'echo $$ > "$0/pid.new" && mv -f "$0/pid.new" "$0/pid"; while :; do "$0/hvctl" agent -config "$0/agent.json" >> "$0/agent.log" 2>&1; sleep 3; done' "$d" </dev/null >/dev/null 2>&1
i=0
while [ ! -s "$d/pid" ]; do
	i=$((i+1)); [ $i -le 200 ] || { echo "the agent supervisor did not start" >&2; exit 1; }
	sleep 0.05
done
`

// removeScript stops the agent of directory $1 and removes it, and
// install_dir $2 when hvctl made it and nothing else is left in it.
const removeScript = prelude + `
d=$1
if [ -s "$d/unit" ]; then
	u=$(cat "$d/unit")
	systemctl disable --now "$u" >/dev/null 2>&1 || true
	rm -f "/etc/systemd/system/$u"
	systemctl daemon-reload >/dev/null 2>&1 || true
fi
p=$(cat "$d/pid" 2>/dev/null)
if alive "$p"; then
	kill -TERM -"$p" 2>/dev/null || kill -TERM "$p"
	i=0
	while group_alive "$p" && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
	kill -KILL -"$p" 2>/dev/null || true
fi
rm -rf "$d"
if [ -f "$2/.hvctl-made" ] && [ "$(ls -A "$2")" = ".hvctl-made" ]; then rm -f "$2/.hvctl-made"; rmdir "$2"; fi
exit 0
`
