# hostile.sh section: third-party clients through the bonded path.

section_relay() {
    local sha
    sha=$(curl_big)
    if [[ $sha == "$BIG_SHA" ]]; then
        pass "curl: nginx's $((HOSTILE_SIZE / 1000000)) MB file through the gateway, sha256 equal"
    else
        fail "curl through the gateway" "got sha256 '$sha', want $BIG_SHA"
    fi
}
