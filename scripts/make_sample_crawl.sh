#!/usr/bin/env bash
# make_sample_crawl.sh - build the bundled sample crawl of real web pages.
#
# The pages are not written by this project: they are the HTML manuals that
# Debian ships in its documentation packages (Debian FAQ, Debian Reference,
# New Maintainers' Guide, Developer's Reference, APT user guide), all under
# DFSG-free licences, in several languages.
#
# How it works:
#   1. make sure the documentation packages are available (apt-get install
#      them if missing; if dpkg is configured to drop /usr/share/doc, or we
#      cannot install, fall back to `apt-get download` + `dpkg-deb -x`);
#   2. copy each manual's HTML (plus its CSS and images) into a temporary web
#      root, one folder per shard, uncompressing any *.html.gz;
#   3. serve that web root with `python3 -m http.server` on 127.0.0.1;
#   4. crawl each folder with `wget --recursive --warc-file=...`, so every shard
#      is a genuine WARC written by wget: a warcinfo record, request/response
#      pairs (HTML, CSS, images, 404s, robots.txt), and wget's own
#      metadata/resource (log) records.
#
# Usage:
#   scripts/make_sample_crawl.sh [sample|second] [OUT_DIR]
#
#   sample (default)  6 shards  -> data/sample_crawl/
#   second            3 shards  -> tests/data/second_crawl/
#
#   OUT_DIR overrides the output folder. Existing <shard>.warc.gz files there
#   are replaced; nothing else in the folder is touched.
#   Environment: SAMPLE_CRAWL_PORT (default 8471) is the local port; it appears
#   in every URL of the crawl, so keep it fixed for stable output.
#
# Needs: bash, wget, python3, gzip, dpkg/apt-get (Debian or a derivative).

set -euo pipefail

usage() {
    sed -n '2,/^$/{s/^# \{0,1\}//;p}' "$0" | sed -n '/^Usage:/,$p'
}

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PORT="${SAMPLE_CRAWL_PORT:-8471}"

# --- arguments ---------------------------------------------------------------
SET="sample"
case "${1:-}" in
    -h|--help) usage; exit 0 ;;
    sample|second) SET="$1"; shift ;;
    "") ;;
    *) echo "error: unknown set '$1' (expected 'sample' or 'second')" >&2
       usage >&2; exit 2 ;;
esac

# --- shard definitions -------------------------------------------------------
# One line per shard:  shard name | Debian packages | source folder | HTML glob
#   - the shard name is the WARC file name (<name>.warc.gz) and the URL path
#     (http://127.0.0.1:PORT/<name>/) the crawl starts from;
#   - the source folder is copied (HTML matching the glob, CSS, images, text)
#     without its language subfolders (de/, fr/, zh-cn/ ...), which belong to
#     other translations.
case "$SET" in
    sample)
        DEFAULT_OUT="$REPO_ROOT/data/sample_crawl"
        SHARDS=(
            "debian-faq-de|debian-faq-de|/usr/share/doc/debian/FAQ/de|*.html"
            "debian-faq-en|debian-faq|/usr/share/doc/debian/FAQ|*.html"
            "debian-faq-fr|debian-faq-fr|/usr/share/doc/debian/FAQ/fr|*.html"
            "debian-reference-en|debian-reference-en debian-reference-common|/usr/share/debian-reference|*.en.html"
            "debian-reference-ja|debian-reference-ja debian-reference-common|/usr/share/debian-reference|*.ja.html"
            "maint-guide-zh-cn|maint-guide-zh-cn|/usr/share/doc/maint-guide-zh-cn/html|*.html"
        )
        ;;
    second)
        DEFAULT_OUT="$REPO_ROOT/tests/data/second_crawl"
        SHARDS=(
            "apt-doc|apt-doc|/usr/share/doc/apt-doc|*.html"
            "developers-reference-en|developers-reference|/usr/share/developers-reference|*.html"
            "developers-reference-ru|developers-reference-ru|/usr/share/developers-reference/ru|*.html"
        )
        ;;
esac
OUT_DIR="${1:-$DEFAULT_OUT}"

for tool in wget python3 gzip dpkg-query apt-get dpkg-deb; do
    command -v "$tool" >/dev/null || { echo "error: '$tool' not found" >&2; exit 1; }
done

# --- temporary workspace, cleaned up (and the server stopped) on exit --------
WORK="$(mktemp -d "${TMPDIR:-/tmp}/sample-crawl.XXXXXX")"
SERVER_PID=""
cleanup() {
    if [[ -n "$SERVER_PID" ]]; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT
WWW="$WORK/www"          # web root served by http.server
EXTRACT="$WORK/extract"  # fallback: packages unpacked here instead of installed
STAGE_OUT="$WORK/out"    # WARCs are written here, moved to OUT_DIR at the end
mkdir -p "$WWW" "$EXTRACT" "$STAGE_OUT" "$WORK/dl"

log() { echo "[make_sample_crawl] $*" >&2; }

# --- 1. packages -------------------------------------------------------------
is_installed() {
    [[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" == "install ok installed" ]]
}

SUDO=""
[[ "$(id -u)" -eq 0 ]] || SUDO="$(command -v sudo || true)"

ALL_PKGS=()
for line in "${SHARDS[@]}"; do
    IFS='|' read -r _ pkgs _ _ <<<"$line"
    read -r -a words <<<"$pkgs"
    ALL_PKGS+=("${words[@]}")
done

MISSING=()
for p in "${ALL_PKGS[@]}"; do is_installed "$p" || MISSING+=("$p"); done
if ((${#MISSING[@]})); then
    log "installing: ${MISSING[*]}"
    if [[ "$(id -u)" -eq 0 || -n "$SUDO" ]]; then
        $SUDO apt-get install -y --no-install-recommends "${MISSING[@]}" >&2 ||
            { $SUDO apt-get update >&2 &&
              $SUDO apt-get install -y --no-install-recommends "${MISSING[@]}" >&2; } ||
            log "apt-get install failed; will unpack the packages instead"
    else
        log "not root and no sudo; will unpack the packages instead"
    fi
fi

# Folder that holds a package file tree: "/" when the package is installed and
# its files are really on disk, else a private copy unpacked from the .deb.
# (Minimal/container images often tell dpkg to skip /usr/share/doc.)
# Prints that root.
unpack_if_needed() {  # unpack_if_needed SRC_DIR PKG...
    local src="$1"; shift
    local p ok=1
    for p in "$@"; do is_installed "$p" || ok=0; done
    if ((ok)) && [[ -d "$src" ]]; then
        echo "/"
        return
    fi
    for p in "$@"; do
        if [[ ! -e "$EXTRACT/.$p" ]]; then
            log "unpacking $p into the workspace"
            (cd "$WORK" && apt-get download "$p" >&2)
            dpkg-deb -x "$WORK/${p}_"*.deb "$EXTRACT"
            touch "$EXTRACT/.$p"
        fi
    done
    echo "$EXTRACT"
}

pkg_version() {
    if is_installed "$1"; then
        dpkg-query -W -f='${Version}' "$1"
    else
        dpkg-deb -f "$WORK/${1}_"*.deb Version
    fi
}

# --- 2. stage the HTML into the web root -------------------------------------
# stage SRC_DIR DEST_DIR HTML_GLOB: copy HTML matching the glob, *.html.gz,
# stylesheets, images and plain text, following symlinks (dangling ones are
# skipped: the crawl then records a 404, as on the real web), and leaving out
# language subfolders such as de/ or zh-cn/.
stage() {
    local src="$1" dest="$2" glob="$3" f rel
    find -L "$src" -mindepth 1 \
        \( -type d -regextype posix-extended -regex '.*/[a-z]{2}(-[a-z]{2})?' -prune \) -o \
        \( -type f \( -name "$glob" -o -name '*.html.gz' -o -name '*.css' \
                      -o -name '*.png' -o -name '*.gif' -o -name '*.jpg' \
                      -o -name '*.svg' -o -name '*.txt' \) -print \) |
    while IFS= read -r f; do
        rel="${f#"$src"/}"
        mkdir -p "$dest/$(dirname "$rel")"
        cp -L --preserve=timestamps "$f" "$dest/$rel"
    done
    # Serve real HTML, not gzip files: uncompress any compressed pages.
    find "$dest" -type f -name '*.html.gz' -exec gzip -d -f {} +
}

MANIFEST=()
for line in "${SHARDS[@]}"; do
    IFS='|' read -r shard pkgs src glob <<<"$line"
    read -r -a words <<<"$pkgs"
    root="$(unpack_if_needed "$src" "${words[@]}")"
    dir="${root%/}$src"
    [[ -d "$dir" ]] || { echo "error: $dir not found (package ${words[*]})" >&2; exit 1; }
    stage "$dir" "$WWW/$shard" "$glob"
    versions=""
    for p in "${words[@]}"; do versions+="$p=$(pkg_version "$p") "; done
    MANIFEST+=("$shard: ${versions% } ($(find "$WWW/$shard" -type f | wc -l) files)")
done

# --- 3. serve it -------------------------------------------------------------
log "serving $WWW on http://127.0.0.1:$PORT/"
python3 -m http.server --bind 127.0.0.1 --directory "$WWW" "$PORT" \
    >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 50); do
    if wget -q -O /dev/null "http://127.0.0.1:$PORT/"; then break; fi
    kill -0 "$SERVER_PID" 2>/dev/null ||
        { cat "$WORK/server.log" >&2; echo "error: server did not start (port $PORT busy?)" >&2; exit 1; }
    sleep 0.2
done

# --- 4. crawl: one WARC per shard --------------------------------------------
# Start at the shard's folder URL: folders with an index.html get that page,
# others get http.server's directory listing, as many real sites do.
# --level=3 reaches every page and image; scripts are not fetched. One
# connection per request: http.server speaks HTTP/1.0, and reusing a closed
# connection makes wget log a request that got no response.
for line in "${SHARDS[@]}"; do
    IFS='|' read -r shard _ _ _ <<<"$line"
    log "crawling $shard"
    # Run from the workspace with relative paths: wget records its command
    # line in the WARC, and random temp-dir names there would be noise.
    rc=0
    (cd "$WORK" && wget --recursive --level=3 --no-parent \
        --reject '*.js' --no-http-keep-alive \
        --no-verbose \
        --delete-after --directory-prefix=dl \
        --warc-file="out/$shard" --warc-tempdir=. \
        "http://127.0.0.1:$PORT/$shard/") 2>>"$WORK/wget.log" || rc=$?
    # 8 = "server issued an error response" (404s for missing links): expected.
    if [[ $rc -ne 0 && $rc -ne 8 ]]; then
        tail -n 20 "$WORK/wget.log" >&2
        echo "error: wget failed on $shard (exit $rc)" >&2
        exit 1
    fi
done

# --- 5. publish --------------------------------------------------------------
mkdir -p "$OUT_DIR"
for line in "${SHARDS[@]}"; do
    IFS='|' read -r shard _ _ _ <<<"$line"
    mv -f "$STAGE_OUT/$shard.warc.gz" "$OUT_DIR/$shard.warc.gz"
done

log "done: $OUT_DIR"
printf '%s\n' "${MANIFEST[@]}" >&2
ls -l "$OUT_DIR"/*.warc.gz >&2
