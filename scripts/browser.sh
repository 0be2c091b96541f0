#!/usr/bin/env bash
# scripts/browser.sh — provision the browser end-to-end test: Debian's
# chromium (/usr/bin/chromium) and playwright-core, pinned by
# web/package-lock.json, into web/node_modules.
#
#   scripts/browser.sh          install what is missing, print versions
#
# Needs apt (as root, or through sudo) when chromium or node is missing, and
# the npm registry for playwright-core (npm ci; skipped when the pinned
# version is already installed). Idempotent; a second run does no network I/O.
# No browser is downloaded by playwright: it drives /usr/bin/chromium.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

SUDO=()
if [[ $(id -u) != 0 ]]; then
	command -v sudo >/dev/null || { echo "browser.sh: need root or sudo to apt-get install" >&2; exit 1; }
	SUDO=(sudo)
fi

APT_UPDATED=0
apt_install() { # apt_install PKG...
	if ((!APT_UPDATED)); then
		"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
		APT_UPDATED=1
	fi
	"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"
}

# chromium: Debian's own build, with the fonts a screenshot needs.
if [[ ! -x /usr/bin/chromium ]]; then
	echo "browser.sh: installing chromium (apt)" >&2
	apt_install chromium fonts-liberation
fi

# node + npm: playwright-core needs node >= 20 (Debian bookworm's own nodejs
# is 18, so apt helps only on newer releases).
node_major() { node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }
if ! command -v npm >/dev/null || (($(node_major) < 20)); then
	echo "browser.sh: installing nodejs and npm (apt)" >&2
	apt_install nodejs npm || true
	if ! command -v npm >/dev/null || (($(node_major) < 20)); then
		echo "browser.sh: need node >= 20 and npm (have: $(node --version 2>/dev/null || echo none))" >&2
		exit 1
	fi
fi

# playwright-core at the version web/package-lock.json pins.
want=$(node -p 'require("./web/package-lock.json").packages["node_modules/playwright-core"].version')
have=$(node -p 'try { require("./web/node_modules/playwright-core/package.json").version } catch { "" }')
if [[ $have != "$want" ]]; then
	echo "browser.sh: npm ci (playwright-core $want)" >&2
	PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --prefix web --no-audit --no-fund --loglevel=error
fi

echo "chromium: $(/usr/bin/chromium --version 2>/dev/null | head -n1)"
echo "node: $(node --version), playwright-core: $want"
