# Helpers of the deploy scripts that .github/workflows/deploy.yml runs. Source
# it; do not run it. The README's Deploy section explains the pipeline.
#
#   VELRO_DEPLOY_DRY_RUN=1  print each railway and wrangler command instead
#                           of running it, so the scripts can be tried without accounts
#   VELRO_ORIGIN            the velro-origin binary (default: velro-origin on PATH)
#   REGIONS_FILE            the regions file (default: regions.toml)

set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

die() {
    echo "error: $*" >&2
    exit 1
}

velro_origin() {
    "${VELRO_ORIGIN:-velro-origin}" "$@"
}

# Runs a command of an outside service's CLI, or prints it under VELRO_DEPLOY_DRY_RUN=1.
external() {
    if [ "${VELRO_DEPLOY_DRY_RUN:-0}" = 1 ]; then
        printf '+'
        printf ' %q' "$@"
        printf '\n'
        return 0
    fi
    "$@"
}

# Runs the wrangler that edge/package.json pins, with the Node.js it installs.
wrangler() {
    external edge/node_modules/.bin/node edge/node_modules/wrangler/bin/wrangler.js "$@"
}

# Checks that $1 is blue or green.
require_color() {
    case "${1:-}" in
        blue | green) ;;
        *) die "expected the color blue or green, got '${1:-}'" ;;
    esac
}

# Prints one line per region of the checked regions file: name, edge variable
# and the URL of color $1, separated by tabs. Callers read it into a variable
# first, because set -e does not stop a script when a process substitution fails.
region_lines() {
    velro_origin regions --file "${REGIONS_FILE:-regions.toml}" --color "$1"
}
