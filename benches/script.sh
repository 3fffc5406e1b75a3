# 1,000 commands for scripts/bench: external BusyBox applets (each a fork
# and an exec under the shell), with a pipeline every tenth.
i=0
while [ $i -lt 100 ]; do
	busybox true
	busybox echo "$i" | busybox cat >/dev/null
	busybox basename /a/b/c >/dev/null
	busybox dirname /a/b/c >/dev/null
	busybox expr $i + 1 >/dev/null
	busybox test -d /
	busybox printf '%s\n' x >/dev/null
	busybox sleep 0
	i=$(busybox expr $i + 1)
done
