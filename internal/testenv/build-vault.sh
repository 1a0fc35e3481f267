#!/usr/bin/env bash
# Builds the HashiCorp Vault server that keyhole's Vault tests run in dev mode
# (testenv.StartVault), from the Go module proxy only. The binary is cached
# per user, so only the first run builds (see /work/shared/NOTES.md for
# timings; 10 to 40 minutes on 2 shared cores).
#
#   KEYHOLE_VAULT_BIN   a vault binary to use instead (nothing is built)
#   VAULT_VERSION       the github.com/hashicorp/vault module version
#
# github.com/hashicorp/vault carries replace directives pointing its api, sdk
# and api/auth/* modules at its own subdirectories, so `go install` refuses
# it. We build from a throwaway module that requires it and points each of
# those at the published version Vault's go.mod requires (other replace
# lines are copied as they are). Then the binary must serve in dev mode
# before it is cached.
#
# No v1.14.x tag builds from published modules alone: the release branch's
# in-tree sdk matches no sdk tag (v1.14.3 to v1.14.8 use sdk code no tag
# carries; the proxy serves no commit versions). v1.14.2 compiles against
# sdk v0.9.2, whose framework package gained a start-up assertion (a path
# defining CreateOperation must define ExistenceCheck) that v1.14.2's own
# sdk did not have, so its dev server panics at start on managed-keys/.
# We therefore build against a copy of sdk v0.9.2 with exactly that
# assertion removed (SDK_PATCH below; the script fails if the copy does
# not hold it verbatim), which is v1.14.2's behaviour. No other source is
# touched. The dev server started below proves the result.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib-build.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib-build.sh"

VAULT_VERSION=${VAULT_VERSION:-v1.14.2}
build_init vault "$cache_root/keyhole/tools/vault-$VAULT_VERSION"
build_use_override KEYHOLE_VAULT_BIN
build_skip_cached vault
build_begin "$VAULT_VERSION" "10 to 40 minutes"
cd "$work"

gomod=$(build_mod_download GoMod "github.com/hashicorp/vault@$VAULT_VERSION")
[ -f "$gomod" ] || { echo "vault: cannot download github.com/hashicorp/vault@$VAULT_VERSION go.mod" >&2; exit 1; }

# Each `replace M => ./dir` becomes `M => M <version Vault requires>`.
replaces=$(awk '
  /^require[[:space:]]*\(/ { inreq = 1; next }
  inreq && /^\)/ { inreq = 0; next }
  inreq && NF >= 2 { req[$1] = $2; next }
  /^require[[:space:]]+[^(]/ { req[$2] = $3; next }
  /^replace[[:space:]]/ { sub(/^replace[[:space:]]+/, ""); rep[++n] = $0 }
  END {
    for (i = 1; i <= n; i++) {
      split(rep[i], f, /[[:space:]]*=>[[:space:]]*/)
      split(f[1], lhs, /[[:space:]]+/)
      if (f[2] ~ /^\.\.?\//) {
        if (!(lhs[1] in req)) { print "vault: go.mod does not require " lhs[1] > "/dev/stderr"; exit 1 }
        print "\t" lhs[1] " => " lhs[1] " " req[lhs[1]]
      } else {
        print "\t" rep[i]
      }
    }
  }' "$gomod")
{
  echo "module keyhole.local/build-vault"
  echo
  echo "go 1.20"
  echo
  echo "require github.com/hashicorp/vault $VAULT_VERSION"
  echo
  echo "replace ("
  echo "$replaces"
  echo ")"
} >go.mod
build_tools_go github.com/hashicorp/vault

# sdk: a copy of the version Vault requires, without the assertion.
sdk_version=$(sed -n 's#^[[:space:]]*github.com/hashicorp/vault/sdk => github.com/hashicorp/vault/sdk \(v[^[:space:]]*\)$#\1#p' go.mod)
sdk_dir=$(build_mod_download Dir "github.com/hashicorp/vault/sdk@$sdk_version")
[ -d "$sdk_dir" ] || { echo "vault: cannot download github.com/hashicorp/vault/sdk@$sdk_version" >&2; exit 1; }
cp -r "$sdk_dir" sdk
chmod -R u+w sdk
# The assertion: from its comment to the blank line after its if block.
awk '
  /Detect the coding error of attempting to define a CreateOperation without defining an ExistenceCheck/ { skip = 1; removed++ }
  skip && /^$/ { skip = 0; next }
  !skip { print }
  END { if (removed != 1) exit 1 }' sdk/framework/backend.go >sdk/framework/backend.go.new ||
  { echo "vault: sdk $sdk_version framework/backend.go does not hold the expected assertion once; refusing to build" >&2; exit 1; }
mv sdk/framework/backend.go.new sdk/framework/backend.go
if grep -q 'defines a CreateOperation but no ExistenceCheck' sdk/framework/backend.go; then
  echo "vault: the sdk assertion is still there after patching" >&2; exit 1
fi
sed -i "s#github.com/hashicorp/vault/sdk => github.com/hashicorp/vault/sdk $sdk_version#github.com/hashicorp/vault/sdk => ./sdk#" go.mod
build_quiet go mod tidy
# -p 2: the build machines have two cores, shared.
build_go_build vault github.com/hashicorp/vault -p 2 -trimpath -ldflags='-s -w'
"$out/vault.tmp" version >/dev/null

# A dev server on a kernel-chosen port must get as far as its banner, which
# it prints once it is unsealed and has mounted secret/.
mkdir "$work/home"
HOME=$work/home "$out/vault.tmp" server -dev -dev-listen-address=127.0.0.1:0 -dev-no-store-token >"$work/dev.log" 2>&1 &
pid=$!
ok=
for _ in $(seq 1 120); do
  if grep -q 'Development mode should NOT be used' "$work/dev.log"; then ok=1; break; fi
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.5
done
kill "$pid" 2>/dev/null || true
wait "$pid" 2>/dev/null || true
if [ -z "$ok" ]; then
  rm -f "$out/vault.tmp"
  echo "vault: the $VAULT_VERSION binary built but its dev server does not start; from its log:" >&2
  # A panic's message, else the last lines (never the token banner).
  grep -m 1 -A 4 '^panic:' "$work/dev.log" >&2 ||
    grep -v '^[[:space:]]\|Root Token\|Unseal Key' "$work/dev.log" | tail -n 15 >&2
  exit 1
fi
build_install vault
echo "vault: ready in $out/vault ($("$out/vault" version))"
