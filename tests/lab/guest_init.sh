#!/bin/busybox sh
# /init of the Confluencia test guest, built by tests/lab/guest_image.py (busybox only, no root fs).
# Reads a NoCloud seed (CD-ROM labelled cidata) and reports on the console, one line each:
#   CONFLUENCIA-GUEST key=value      (value runs to the end of the line)
#   CONFLUENCIA-GUEST ready          (seed applied, services up)
#   CONFLUENCIA-GUEST tick N         (every second from ready on)
#   CONFLUENCIA-GUEST probe=R KIND:TARGET ok|fail   (round R of the probes in /etc/confluencia/probes)
# The protocol is documented and parsed in tests/lab/guest_console.py; keep both in step.
/bin/busybox mkdir -p /proc /sys /dev /tmp /run /root/.ssh /seed /www /etc/acpi/PWRF
/bin/busybox --install -s /bin
export PATH=/bin HOME=/root
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
exec </dev/console >/dev/console 2>&1

say() {
	echo "CONFLUENCIA-GUEST $*"
	echo "CONFLUENCIA-GUEST $*" >/dev/tty1 2>/dev/null  # the VGA screen behind VNC
}
uptime_s() { read -r up _ </proc/uptime; echo "${up%.*}"; }

say "kernel=$(uname -r)"
while read -r m; do
	insmod "/lib/modules/$m" 2>/dev/null || say "module-failed=$m"
done </etc/modules.order
say "cpus=$(nproc)"
say "mem-kib=$(awk '/^MemTotal:/ {print $2}' /proc/meminfo)"

# --- NoCloud seed --------------------------------------------------------------------------------
find_seed() {
	deadline=$(($(uptime_s) + 10))
	while [ "$(uptime_s)" -le "$deadline" ]; do
		for dev in $(findfs LABEL=cidata 2>/dev/null) $(findfs LABEL=CIDATA 2>/dev/null) /dev/sr0 /dev/sr1; do
			[ -b "$dev" ] || continue
			if mount -t iso9660 -o ro "$dev" /seed 2>/dev/null; then
				[ -f /seed/meta-data ] && { SEED=$dev; return 0; }
				umount /seed
			fi
		done
		sleep 0.2  # the CD-ROM shows up a moment after ata_piix is loaded
	done
	return 1
}

# yaml_get FILE KEY: the value of the first "KEY: value" line (any indentation), quotes removed
yaml_get() {
	sed -n "s/^[[:space:]]*$2:[[:space:]]*//p" "$1" | head -n 1 |
		sed -e 's/[[:space:]]*$//' -e "s/^[\"']//" -e "s/[\"']\$//"
}

# yaml_list FILE KEY: the items of the block list under "KEY:" (also "- KEY:"), quotes removed; a long item
# folded onto more-indented lines (as PyYAML writes keys longer than 80 columns) is joined with spaces
yaml_list() {
	awk -v key="$2" -v q="'" '
	function strip(s) { sub(/^[ \t]*-[ \t]*/, "", s); sub(/[ \t]+$/, "", s); gsub("^[\"" q "]|[\"" q "]$", "", s); return s }
	function flush() { if (item != "") print strip(item); item = "" }
	{ line = $0; body = line; sub(/^[ \t]*(-[ \t]+)?/, "", body); ind = length(line) - length(body) }
	inlist && /^[ \t]*$/ { next }
	inlist && /^[ \t]*-[ \t]/ { d = line; sub(/-.*/, "", d); if (length(d) >= kind) { flush(); item = line; next } }
	inlist && item != "" { d = line; sub(/[^ \t].*/, "", d); if (length(d) > kind) { s = line; sub(/^[ \t]+/, "", s); item = item " " s; next } }
	inlist { flush(); inlist = 0 }
	body ~ "^" key ":[ \t]*$" { inlist = 1; kind = ind }
	END { flush() }
	' "$1"
}

# ssh_keys [USER_DATA]: meta-data public-keys (as real cloud-init reads them) and a cloud-config's
# ssh_authorized_keys, each key once, in that order
ssh_keys() {
	{
		yaml_list /seed/meta-data public-keys
		[ -n "$1" ] && yaml_list "$1" ssh_authorized_keys
	} | awk 'NF && !seen[$0]++' >/tmp/keys
	say "ssh-keys=$(grep -c . /tmp/keys)"
	cp /tmp/keys /root/.ssh/authorized_keys
	while read -r ktype kblob kcomment; do
		fp=$(echo "$kblob" | base64 -d 2>/dev/null | sha256sum | cut -d' ' -f1 | xxd -r -p | base64 | tr -d '=\n')
		say "ssh-key=SHA256:$fp $kcomment"
	done </tmp/keys
}

# write_files: path, content (a scalar or a "|" block), permissions. Writes them and reports each.
write_files() {
	awk -v q="'" '
	function val(s) { sub(/^[^:]*:[ \t]*/, "", s); sub(/[ \t]+$/, "", s); gsub("^[\"" q "]|[\"" q "]$", "", s); return s }
	function flush(  dir) {
		if (path == "") return
		dir = path; sub(/\/[^\/]*$/, "", dir)
		if (dir != "") system("mkdir -p " q dir q)
		printf "%s", content > path; close(path)
		if (perms != "") system("chmod " perms " " q path q)
		print path, length(content)
		path = ""; content = ""; perms = ""
	}
	block && /^[ \t]*$/ { content = content "\n"; next }
	block { l = $0; if (bind == "") { match(l, /^[ \t]*/); bind = substr(l, 1, RLENGTH) }
		if (bind != "" && index(l, bind) == 1) { content = content substr(l, length(bind) + 1) "\n"; next }
		if (chomp) sub(/\n$/, "", content); block = 0 }
	/^write_files:/ { inwf = 1; next }
	inwf && /^[^ \t#-]/ { flush(); inwf = 0 }
	!inwf { next }
	/^[ \t]*-[ \t]/ { flush(); sub(/-/, " ") }
	{ k = $0; sub(/^[ \t]*/, "", k) }
	k ~ /^path:/ { path = val(k) }
	k ~ /^permissions:/ { perms = val(k) }
	k ~ /^content:/ { v = val(k); if (v ~ /^\|/) { block = 1; bind = ""; chomp = (v == "|-") } else content = v }
	END { if (block && chomp) sub(/\n$/, "", content); flush() }
	' "$1" | while read -r p n; do say "write-file=$p bytes=$n"; done
}

run_cmds() {
	# string items as they are; list items ([sh, -c, "..."]) joined with spaces
	yaml_list "$1" runcmd | sed -e '/^\[.*\]$/{s/^\[//;s/\]$//;s/,[[:space:]]*/ /g}' >/tmp/runcmd
	while read -r cmd; do
		say "runcmd=$cmd"
		sh -c "$cmd" </dev/null
		say "runcmd-rc=$?"
	done </tmp/runcmd
}

user_data() {
	case "$(head -n 1 "$1")" in
	"#cloud-config"*)
		say "user-data=cloud-config"
		ssh_keys "$1"
		write_files "$1"
		run_cmds "$1"
		;;
	"#!"*)
		say "user-data=script"
		ssh_keys  # the meta-data keys alone
		cp "$1" /tmp/user-script && chmod 0755 /tmp/user-script
		/tmp/user-script </dev/null
		say "user-data-rc=$?"
		;;
	*)
		say "user-data=unsupported"
		ssh_keys
		;;
	esac
}

# --- network (network-config version 2: addresses or dhcp4 of the first ethernet; version 1 too) --
cat >/etc/udhcpc.sh <<'EOF'
#!/bin/sh
case "$1" in
bound | renew)
	ip addr flush dev "$interface"
	ip addr add "$ip/${mask:-24}" dev "$interface"
	[ -n "$router" ] && ip route add default via "${router%% *}" dev "$interface"
	echo "$ip/${mask:-24}" >/tmp/dhcp-address
	;;
esac
EOF
chmod 0755 /etc/udhcpc.sh

network() {
	ip link set lo up
	NIC=""
	for n in /sys/class/net/*; do [ "${n##*/}" = lo ] || { NIC=${n##*/}; break; }; done
	ADDR=""
	[ -n "$NIC" ] && say "nic=$NIC mac=$(cat /sys/class/net/$NIC/address)"
	cfg=/seed/network-config
	if [ ! -f "$cfg" ]; then say "network=none"; return; fi
	addr=$(sed -n 's/^[[:space:]]*addresses:[[:space:]]*\[[[:space:]]*\([^],[:space:]]*\).*/\1/p' "$cfg" | head -n 1 | tr -d "\"'")
	[ -n "$addr" ] || addr=$(yaml_list "$cfg" addresses | head -n 1)
	[ -n "$addr" ] || addr=$(yaml_get "$cfg" address)
	gw=$(yaml_get "$cfg" gateway4)
	[ -n "$gw" ] || gw=$(yaml_get "$cfg" via)
	dhcp=$(yaml_get "$cfg" dhcp4)
	grep -q 'type:[[:space:]]*dhcp' "$cfg" && dhcp=true
	if [ -z "$NIC" ]; then say "network=no-nic"; return; fi
	ip link set "$NIC" up
	if [ -n "$addr" ]; then
		ip addr add "$addr" dev "$NIC" && ADDR=$addr
		[ -n "$gw" ] && ip route add default via "$gw" dev "$NIC"
		say "network=static"
	elif [ "$dhcp" = true ] || [ "$dhcp" = yes ]; then
		say "network=dhcp"
		udhcpc -i "$NIC" -n -q -t 10 -T 1 -s /etc/udhcpc.sh >/dev/null 2>&1 && ADDR=$(cat /tmp/dhcp-address)
	else
		say "network=unsupported"
	fi
	if [ -n "$ADDR" ]; then
		say "address=$ADDR"
		[ -n "$gw" ] && say "gateway=$gw"
		nc -ll -p 7 -e cat &
		httpd -p 80 -h /www
		say "listen=tcp:7 echo"
		say "listen=tcp:80 http"
		[ -f /etc/confluencia/probes ] && probes </dev/null &
	else
		say "address=none"
	fi
}

# probes: each line of /etc/confluencia/probes (written by the seed's write_files) is "ping ADDR" or
# "tcp ADDR PORT" (a line sent to an echo server must come back); all are tried in rounds, a second apart,
# from the moment the NIC has its address, and each result is reported with its round number
probes() {
	r=0
	while :; do
		r=$((r + 1))
		while read -r kind addr port; do
			case "$kind" in
			ping)
				res=fail
				ping -c 1 -W 1 "$addr" >/dev/null 2>&1 && res=ok
				say "probe=$r ping:$addr $res"
				;;
			tcp)
				res=fail
				[ "$(echo "probe-$r" | nc -w 1 "$addr" "$port" 2>/dev/null)" = "probe-$r" ] && res=ok
				say "probe=$r tcp:$addr:$port $res"
				;;
			esac
		done </etc/confluencia/probes
		sleep 1
	done
}

disks() {
	out=""
	for d in /sys/block/*; do
		n=${d##*/}
		case $n in loop* | ram* | zram*) continue ;; esac
		s=$(cat "$d/size" 2>/dev/null) || continue
		out="$out${out:+,}$n:$((s * 512))"
	done
	echo "$out"
}

# --- main ----------------------------------------------------------------------------------------
if find_seed; then
	say "seed=$SEED"
	HOST=$(yaml_get /seed/meta-data local-hostname)
	IID=$(yaml_get /seed/meta-data instance-id)
	[ -n "$HOST" ] && hostname "$HOST"
	say "instance-id=$IID"
	say "hostname=$HOST"
	if [ -f /seed/user-data ]; then user_data /seed/user-data; else ssh_keys; fi
else
	say "seed=none"
fi
network
printf 'hostname=%s\ninstance-id=%s\n' "$(hostname)" "$IID" >/www/index.html

# ACPI power button (virsh shutdown): report it, then power off at once
printf '#!/bin/sh\necho "CONFLUENCIA-GUEST shutdown" >/dev/console\nsync\npoweroff -f\n' >/etc/acpi/PWRF/00000080
chmod 0755 /etc/acpi/PWRF/00000080
acpid -c /etc/acpi -l /tmp/acpid.log

LAST=$(disks)
say "disks=$LAST"
say ready
n=0
while :; do
	sleep 1
	n=$((n + 1))
	say "tick $n"
	if [ $((n % 3)) -eq 0 ]; then  # re-scan: hot-plugged and resized disks
		now=$(disks)
		[ "$now" != "$LAST" ] && { LAST=$now; say "disks=$now"; }
	fi
done
