# hostile.sh section: what a configuration, a key file or a save directory can do to braid.

section_config() {
    # A class name the control channel cannot carry (its string fields are at most 255 bytes) is
    # refused by `braid check` and by a reload; the running concentrator goes on.
    local long out rc reload
    long=$(printf 'c%.0s' $(seq 256))
    hostile_conc_conf "
config class '$long'

config subscriber 'cpe_long'
	option class '$long'" </dev/null
    out=$("$BRAID_BIN" check --config "$LAB_WORK/concentrator.conf" 2>&1); rc=$?
    reload=$(nsx "$NS_CONC" "$BRAID_BIN" reload --socket "$CONC_SOCK" 2>&1)
    if ((rc == 1)) && grep -q "name of 256 bytes, at most 255" <<<"$out" && grep -q "at most 255" <<<"$reload" &&
        kill -0 "$LAB_CONC_PID" 2>/dev/null; then
        pass "a 256-byte class name: braid check and reload refuse it (name of 256 bytes, at most 255)"
    else
        fail "a 256-byte class name refused" "check exit $rc: ${out:0:200}" "reload: ${reload:0:200}"
    fi
    hostile_restore

    # Secrets readable by others are refused at start with the file and its mode.
    local key="$LAB_WORK/open.key" psk="$LAB_WORK/open.psk"
    cp "$CA/issued/conc.braid.test.key" "$key"
    chmod 644 "$key"
    sed -e "s|$CA/issued/conc.braid.test.key|$key|" -e "s|'$BRAID_PORT'|'4900'|" -e "s|'$CONTROL_PORT'|'4903'|" \
        -e "s|$CONC_SOCK|$LAB_WORK/open.sock|" "$LAB_WORK/concentrator.conf" >"$LAB_WORK/open-key.conf"
    out=$(timeout 10 ip netns exec "$NS_CONC" "$BRAID_BIN" concentrator --config "$LAB_WORK/open-key.conf" 2>&1); rc=$?
    if ((rc != 0 && rc != 124)) && grep -q "permissions 644 for $key are too open" <<<"$out"; then
        pass "a TLS key of mode 644 is refused at start, naming the file and the mode"
    else
        fail "a TLS key of mode 644 refused" "exit $rc" "${out:0:300}"
    fi
    "$BRAID_BIN" genkey >"$psk"
    chmod 640 "$psk"
    printf "config concentrator 'main'\n\toption port '4900'\n\toption psk_file '%s'\n\toption status_socket '%s'\n" \
        "$psk" "$LAB_WORK/open.sock" >"$LAB_WORK/open-psk.conf"
    out=$(timeout 10 ip netns exec "$NS_CONC" "$BRAID_BIN" concentrator --config "$LAB_WORK/open-psk.conf" 2>&1); rc=$?
    if ((rc != 0 && rc != 124)) && grep -q "permissions 640 for $psk are too open" <<<"$out"; then
        pass "a pre-shared key of mode 640 is refused at start, naming the file and the mode"
    else
        fail "a pre-shared key of mode 640 refused" "exit $rc" "${out:0:300}"
    fi

    # A save directory another user made, holding a change a commit would write, is refused; a
    # save file that is a symbolic link is never written through.
    local conf="$LAB_WORK/ucitest/config" save="$LAB_WORK/ucitest/save" victim="$LAB_WORK/ucitest/victim"
    mkdir -p "$conf" "$save"
    printf "config gateway 'main'\n\toption server '198.18.10.2'\n" >"$conf/braid"
    echo "braid.main.server='198.18.99.99'" >"$save/braid"
    chown -R 65534:65534 "$save"
    out=$("$BRAID_BIN" uci -c "$conf" -P "$save" get braid.main.server 2>&1); rc=$?
    local planted=no
    grep -q 198.18.99.99 <<<"$out" && planted=yes
    rm -rf "$save" && mkdir -m 700 "$save" && echo precious >"$victim" && ln -s "$victim" "$save/braid"
    "$BRAID_BIN" uci -c "$conf" -P "$save" set braid.main.port=1 >/dev/null 2>&1
    "$BRAID_BIN" uci -c "$conf" -P "$save" commit braid >/dev/null 2>&1
    if ((rc == 4)) && [[ $planted == no && $(cat "$victim") == precious ]] && grep -q "belongs to uid 65534" <<<"$out"; then
        pass "braid uci: another user's save directory refused ($out); a linked save file not written through"
    else
        fail "braid uci save directory" "exit $rc: $out" "planted change taken: $planted" "victim: $(cat "$victim")"
    fi
}
