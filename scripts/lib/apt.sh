# apt_install PKG...: installs the Debian packages that are not installed yet.
# Runs `apt-get update` only when something is missing, so a set-up machine costs nothing.
apt_install() {
    local missing=()
    local pkg
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    echo "apt: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# apt_download DIR PKG=VERSION...: downloads the pinned .deb files into DIR (created). apt-get
# download drops privileges to _apt, so _apt may write there. On failure prints apt's output on
# stderr and returns 1.
apt_download() {
    local dir=$1
    shift
    mkdir -p "$dir" || return 1
    if id _apt >/dev/null 2>&1; then chown _apt "$dir"; fi
    (cd "$dir" && apt-get download -q "$@" >"$dir/download.log" 2>&1) || { cat "$dir/download.log" >&2; return 1; }
}
