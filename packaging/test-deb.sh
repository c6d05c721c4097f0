#!/usr/bin/env bash
# Packaging test: build the .deb, check what it holds, install it into a
# throwaway root and run the installed binary there, then lintian.
#
#   packaging/test-deb.sh [--profile NAME]   (default: $DEB_PROFILE or dev)
#
# The dev profile packages the binary `cargo test` already built (stripped
# by cargo-deb), which keeps CI quick; --profile release tests the real
# thing. Needs root for the install part: an overlay of / in a private
# mount namespace, entered with chroot, so the real dpkg runs the real
# maintainer scripts and every change vanishes when the test ends. Where
# that is impossible (not root, no overlayfs) the package is unpacked with
# dpkg-deb -x instead and the maintainer scripts are not exercised (said
# so in the output).
set -euo pipefail
cd "$(dirname "$0")/.."

profile="${DEB_PROFILE:-dev}"
if [ "${1:-}" = "--profile" ]; then profile="${2:?--profile needs a name}"; fi

CARGO_DEB_VERSION=3.8.0
failures=0
ok() { echo "ok: $*"; }
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }

# --- cargo-deb ---------------------------------------------------------------
if ! cargo deb --version 2>/dev/null | grep -q " $CARGO_DEB_VERSION\$"; then
  echo "installing cargo-deb $CARGO_DEB_VERSION (cargo install, a few minutes once)"
  start=$(date +%s)
  CARGO_TARGET_DIR="$(mktemp -d)" cargo install cargo-deb --version "$CARGO_DEB_VERSION" --locked -q
  echo "cargo-deb installed in $(($(date +%s) - start)) s"
fi

# --- build -------------------------------------------------------------------
start=$(date +%s)
deb=$(packaging/build-deb.sh --profile "$profile" | tail -n 1)
echo "built $deb ($profile profile) in $(($(date +%s) - start)) s"
[ -f "$deb" ] || { echo "FAIL: no .deb at '$deb'" >&2; exit 1; }

# --- contents ----------------------------------------------------------------
contents=$(dpkg-deb --contents "$deb")
expect_path() { # MODE PATH: a line of `dpkg-deb --contents` with both
  if grep -qE "^$1 [^ ]+ +[0-9]+ [0-9-]+ [0-9:]+ \\.$2\$" <<<"$contents"; then
    ok "contains $2 ($1)"
  else
    fail "missing $2 with mode $1"
  fi
}
expect_path -rwxr-xr-x /usr/bin/snapwarden
expect_path -rw-r--r-- /usr/lib/systemd/system/snapwarden.service
expect_path -rw-r--r-- /usr/lib/sysusers.d/snapwarden.conf
expect_path -rw-r----- /etc/snapwarden/snapwarden.toml
expect_path -rw-r--r-- /usr/share/doc/snapwarden/prometheus-alerts.yml
expect_path -rw-r--r-- /usr/share/doc/snapwarden/README.md
expect_path -rw-r--r-- /usr/share/doc/snapwarden/copyright
expect_path -rw-r--r-- /usr/share/bash-completion/completions/snapwarden
expect_path -rw-r--r-- /usr/share/zsh/vendor-completions/_snapwarden
expect_path -rw-r--r-- /usr/share/fish/vendor_completions.d/snapwarden.fish
expect_path -rw-r--r-- /usr/share/man/man1/snapwarden.1.gz
for sub in run check plan snapshot prune restore orphans status monitor sim login demo; do
  expect_path -rw-r--r-- "/usr/share/man/man1/snapwarden-$sub.1.gz"
done
expect_path -rw-r--r-- /usr/share/doc/snapwarden/changelog.Debian.gz
expect_path -rw-r--r-- /usr/share/lintian/overrides/snapwarden
if grep -q generate <<<"$contents"; then fail "the hidden generate command got a man page"; fi

# --- control -----------------------------------------------------------------
info=$(dpkg-deb -I "$deb")
# The changelog's newest entry must be this version (bump both together).
pkg_version=$(dpkg-deb -f "$deb" Version)
changelog_version=$(sed -n '1s/^snapwarden (\([^)]*\)).*/\1/p' packaging/debian/changelog)
[ "$pkg_version" = "$changelog_version" ] && ok "changelog is at $pkg_version" ||
  fail "packaging/debian/changelog is at '$changelog_version', the package at $pkg_version"
conffiles=$(dpkg-deb -I "$deb" conffiles)
if [ "$conffiles" = "/etc/snapwarden/snapwarden.toml" ]; then
  ok "conffiles: $conffiles"
else
  fail "conffiles is '$conffiles'"
fi
grep -q '^ Depends:.*systemd | systemd-standalone-sysusers' <<<"$info" &&
  ok "Depends names a systemd-sysusers provider" || fail "Depends: $(grep Depends <<<"$info")"
postinst=$(dpkg-deb -I "$deb" postinst)
grep -q 'chown root:snapwarden' <<<"$postinst" && ok "postinst hands the config to snapwarden" ||
  fail "postinst lacks the chown"
grep -q '#DEBHELPER#' <<<"$postinst" && fail "postinst kept #DEBHELPER#" ||
  ok "postinst has the generated snippets"

# --- install into a throwaway root ------------------------------------------
# Runs inside the root, as root, with the .deb at /tmp/snapwarden.deb.
inside=$(cat <<'INSIDE'
set -eu
fail() { echo "FAIL: $*" >&2; exit 1; }
conf=/etc/snapwarden/snapwarden.toml
# The example's secrets are *_env keys: without them `check` must say so,
# naming each variable and nothing else.
secrets="QY_SECRET_ACCESS_KEY UCS_PRIVATE_KEY KC_SECRET_ACCESS_KEY IBMCLOUD_API_KEY"
dpkg -i /tmp/snapwarden.deb >/tmp/dpkg.log 2>&1 || { cat /tmp/dpkg.log; fail "dpkg -i"; }
echo "ok: dpkg -i ran the maintainer scripts"
getent passwd snapwarden | grep -q ':/var/lib/snapwarden:' || fail "no user snapwarden: $(getent passwd snapwarden)"
getent group snapwarden >/dev/null || fail "no group snapwarden"
echo "ok: user and group snapwarden exist ($(getent passwd snapwarden))"
[ "$(stat -c '%U:%G %a' $conf)" = "root:snapwarden 640" ] || fail "$conf is $(stat -c '%U:%G %a' $conf)"
echo "ok: $conf is root:snapwarden 0640"
[ "$(stat -c '%U:%G %a' /etc/snapwarden)" = "root:snapwarden 750" ] || fail "/etc/snapwarden is $(stat -c '%U:%G %a' /etc/snapwarden)"
echo "ok: /etc/snapwarden is root:snapwarden 0750"
/usr/bin/snapwarden --version
set +e
env -u QY_SECRET_ACCESS_KEY -u UCS_PRIVATE_KEY -u KC_SECRET_ACCESS_KEY -u IBMCLOUD_API_KEY \
  /usr/bin/snapwarden check -c $conf >/tmp/check.out 2>/tmp/check.err
rc=$?
set -e
[ $rc = 2 ] || fail "check without the secrets' variables exited $rc"
for v in $secrets; do
  grep -q "environment variable $v is not set" /tmp/check.err || fail "check did not name $v: $(cat /tmp/check.err)"
done
[ "$(grep -c 'is not set' /tmp/check.err)" = 4 ] || fail "other problems: $(cat /tmp/check.err)"
echo "ok: check without the secrets exits 2 naming the 4 variables"
# As the service runs it: user snapwarden, secrets in its environment.
setpriv --reuid=snapwarden --regid=snapwarden --init-groups \
  env QY_SECRET_ACCESS_KEY=x UCS_PRIVATE_KEY=x KC_SECRET_ACCESS_KEY=x IBMCLOUD_API_KEY=x \
  /usr/bin/snapwarden check -c $conf >/tmp/check.out 2>&1 || { cat /tmp/check.out; fail "check as snapwarden"; }
grep -q "^$conf: OK" /tmp/check.out || fail "check said: $(cat /tmp/check.out)"
echo "ok: the installed example passes \`snapwarden check\` as user snapwarden"
# An admin's edit survives a reinstall; ownership stays.
echo "# edited by the admin" >>$conf
dpkg -i /tmp/snapwarden.deb >/tmp/dpkg.log 2>&1 || { cat /tmp/dpkg.log; fail "second dpkg -i"; }
tail -n 1 $conf | grep -q "edited by the admin" || fail "reinstall replaced the edited conffile"
[ "$(stat -c '%U:%G %a' $conf)" = "root:snapwarden 640" ] || fail "after reinstall $conf is $(stat -c '%U:%G %a' $conf)"
echo "ok: reinstall keeps the edited conffile, root:snapwarden 0640"
dpkg --purge snapwarden >/tmp/dpkg.log 2>&1 || { cat /tmp/dpkg.log; fail "dpkg --purge"; }
[ ! -e /usr/bin/snapwarden ] && [ ! -e $conf ] || fail "purge left files behind"
echo "ok: dpkg --purge removes the binary and the conffile"
INSIDE
)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
installed=0
if [ "$(id -u)" = 0 ] && command -v unshare >/dev/null; then
  mkdir -p "$work/upper" "$work/work" "$work/root"
  cp "$deb" "$work/snapwarden.deb"
  # Private mount namespace: the overlay and binds vanish with it.
  if unshare --mount --propagation private bash -euc '
      w=$1
      mount -t overlay overlay -o "lowerdir=/,upperdir=$w/upper,workdir=$w/work" "$w/root"
      mount --bind /proc "$w/root/proc"
      mount --bind /dev "$w/root/dev"
      mount -t tmpfs tmpfs "$w/root/tmp"
      cp "$w/snapwarden.deb" "$w/root/tmp/snapwarden.deb"
      # No systemd runs in the root: the snippets skip systemctl.
      mount -t tmpfs tmpfs "$w/root/run"
      chroot "$w/root" /bin/sh -c "$2"
    ' _ "$work" "$inside"; then
    installed=1
  else
    fail "install test in the throwaway root"
    installed=2
  fi
fi
if [ "$installed" = 0 ]; then
  echo "note: cannot overlay / here (needs root); unpacking with dpkg-deb -x, maintainer scripts not run"
  dpkg-deb -x "$deb" "$work/x"
  "$work/x/usr/bin/snapwarden" --version
  QY_SECRET_ACCESS_KEY=x UCS_PRIVATE_KEY=x KC_SECRET_ACCESS_KEY=x IBMCLOUD_API_KEY=x \
    "$work/x/usr/bin/snapwarden" check -c "$work/x/etc/snapwarden/snapwarden.toml" >/dev/null &&
    ok "the unpacked example passes check" || fail "check on the unpacked example"
fi

# --- version -----------------------------------------------------------------
version=$(dpkg-deb --fsys-tarfile "$deb" | tar -xO ./usr/bin/snapwarden >"$work/bin" && chmod +x "$work/bin" && "$work/bin" --version)
if head=$(git rev-parse --short HEAD 2>/dev/null); then
  grep -qE "^snapwarden [0-9.]+ \\($head(-dirty)?\\)\$" <<<"$version" &&
    ok "--version: $version" || fail "--version '$version' does not name $head"
else
  ok "--version: $version (not a git checkout)"
fi

# --- lintian -----------------------------------------------------------------
if ! command -v lintian >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends lintian) \
    >/dev/null 2>&1 || true
fi
if command -v lintian >/dev/null; then
  # Errors fail the test; warnings and below are shown. Overrides, with
  # their reasons, are in packaging/debian/lintian-overrides.
  if lintian --fail-on error "$deb"; then
    ok "lintian: no errors"
  else
    fail "lintian reports errors"
  fi
else
  echo "note: lintian not available, skipped"
fi

if [ "$failures" -gt 0 ]; then
  echo "packaging test: $failures check(s) failed" >&2
  exit 1
fi
echo "packaging test: all checks passed"
