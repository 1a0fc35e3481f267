package testenv

import (
	"context"
	"errors"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	vaultapi "github.com/hashicorp/vault/api"
)

// TestVault runs the real Vault dev server through what keyhole's Vault
// migration needs: a KV v2 write with check-and-set 0 (create only), the
// read back, the refusal of a second create, and the kubernetes auth
// method being available.
func TestVault(t *testing.T) {
	began := time.Now()
	v := StartVaultT(t)
	t.Logf("StartVault took %v", time.Since(began).Round(time.Millisecond))
	ctx := t.Context()
	client, err := v.Client()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(v.Addr, "http://127.0.0.1:") {
		t.Errorf("Addr = %s, want a loopback address", v.Addr)
	}

	// A value only this run knows; it must come back from Vault and
	// appear in no error, log or output.
	value := "keyhole-canary-" + randomToken()
	kv := client.KVv2("secret")
	const path = "keyhole/testenv/db"
	put, err := kv.Put(ctx, path, map[string]any{"password": value}, vaultapi.WithCheckAndSet(0))
	if err != nil {
		t.Fatalf("first Put of secret/%s with cas=0: %v", path, redact(err.Error(), value))
	}
	if put.VersionMetadata == nil || put.VersionMetadata.Version != 1 {
		t.Errorf("first Put of secret/%s: version metadata %+v, want version 1", path, put.VersionMetadata)
	}

	got, err := kv.Get(ctx, path)
	if err != nil {
		t.Fatalf("Get secret/%s: %v", path, redact(err.Error(), value))
	}
	if s, _ := got.Data["password"].(string); s != value {
		t.Errorf("Get secret/%s: password is not the value written (keys: %v)", path, slices.Sorted(maps.Keys(got.Data)))
	}

	_, err = kv.Put(ctx, path, map[string]any{"password": "second-" + value}, vaultapi.WithCheckAndSet(0))
	switch {
	case err == nil:
		t.Errorf("second Put of secret/%s with cas=0 succeeded; want a check-and-set error", path)
	case strings.Contains(err.Error(), value):
		t.Errorf("second Put of secret/%s: the error quotes the value", path)
	case !strings.Contains(err.Error(), "check-and-set"):
		t.Errorf("second Put of secret/%s with cas=0: %v; want a check-and-set error", path, err)
	}
	if got, err := kv.Get(ctx, path); err != nil {
		t.Errorf("Get secret/%s after the refused Put: %v", path, redact(err.Error(), value))
	} else if s, _ := got.Data["password"].(string); s != value || got.VersionMetadata.Version != 1 {
		t.Errorf("the refused Put changed secret/%s (version %d)", path, got.VersionMetadata.Version)
	}

	// keyhole's Vault plans use the kubernetes auth method; it is built
	// into the server.
	if err := client.Sys().EnableAuthWithOptionsWithContext(ctx, "kubernetes", &vaultapi.EnableAuthOptions{Type: "kubernetes"}); err != nil {
		t.Errorf("enabling the kubernetes auth method: %v", err)
	} else if auths, err := client.Sys().ListAuthWithContext(ctx); err != nil {
		t.Errorf("listing auth methods: %v", err)
	} else if a := auths["kubernetes/"]; a == nil || a.Type != "kubernetes" {
		t.Errorf("auth methods after enabling kubernetes: %v", slices.Sorted(maps.Keys(auths)))
	}

	logs := v.Logs()
	if strings.Contains(logs, value) {
		t.Error("the value written appears in Vault's log")
	}
	// The dev server prints its root token in a banner, at some point
	// after it starts serving; TestStartVaultFailure checks the redaction
	// itself.
	if strings.Contains(logs, v.RootToken) {
		t.Error("Logs shows the root token")
	}
	// Stored only if -dev-no-store-token is lost.
	if _, err := os.Stat(filepath.Join(v.Dir, ".vault-token")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the dev server stored a token helper file in its HOME (%v)", err)
	}

	if err := v.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := v.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}
	if _, err := os.Stat(v.Dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Stop left %s (%v)", v.Dir, err)
	}
	if resp, err := http.Get(v.Addr + "/v1/sys/health"); err == nil {
		resp.Body.Close()
		t.Errorf("Vault still answers at %s after Stop", v.Addr)
	}
	assertNoChildren(t)
}

// TestStartVaultFailure runs a vault binary that exits at once: StartVault
// must say why, keep the root token out of its error, and leave nothing
// behind.
func TestStartVaultFailure(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	bin := filepath.Join(t.TempDir(), "vault")
	script := "#!/bin/sh\necho \"vault stand-in: token=$VAULT_DEV_ROOT_TOKEN_ID home=$HOME args=$*\"\nexit 3\n"
	if err := os.WriteFile(bin, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("KEYHOLE_VAULT_BIN", bin)
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	v, err := StartVault(ctx)
	if err == nil {
		_ = v.Stop()
		t.Fatal("StartVault succeeded with a binary that exits")
	}
	msg := err.Error()
	for _, want := range []string{"vault exited early", "vault stand-in", "token=<redacted root token>", "home=" + tmp, "-dev-listen-address=127.0.0.1:"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q:\n%s", want, msg)
		}
	}
	if tok := regexp.MustCompile(`[0-9a-f]{32}`).FindString(msg); tok != "" {
		t.Errorf("error holds a token-like string:\n%s", msg)
	}
	if left, _ := os.ReadDir(tmp); len(left) != 0 {
		t.Errorf("StartVault left %v in TMPDIR", left)
	}
	assertNoChildren(t)
}

func TestVaultBinaryMissing(t *testing.T) {
	t.Setenv("KEYHOLE_VAULT_BIN", "")
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	path, err := VaultBinary()
	if err == nil {
		t.Fatalf("VaultBinary found %s in an empty cache", path)
	}
	want := filepath.Join(os.Getenv("XDG_CACHE_HOME"), "keyhole", "tools", "vault-"+VaultVersion, "vault")
	if path != want {
		t.Errorf("VaultBinary looked at %s, want %s (the path build-vault.sh writes)", path, want)
	}
	for _, s := range []string{want, "build-vault.sh", "KEYHOLE_VAULT_BIN"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q lacks %q", err, s)
		}
	}
}

// TestVaultScriptVersion keeps VaultVersion in step with build-vault.sh,
// which names the cache directory VaultBinary looks in.
func TestVaultScriptVersion(t *testing.T) {
	b, err := os.ReadFile("build-vault.sh")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`VAULT_VERSION=\$\{VAULT_VERSION:-([^}]+)\}`).FindSubmatch(b)
	if m == nil {
		t.Fatal("build-vault.sh does not default VAULT_VERSION")
	}
	if string(m[1]) != VaultVersion {
		t.Errorf("build-vault.sh defaults VAULT_VERSION=%s, testenv expects %s", m[1], VaultVersion)
	}
	if !strings.Contains(string(b), `tools/vault-$VAULT_VERSION`) {
		t.Error("build-vault.sh does not build into tools/vault-$VAULT_VERSION, where VaultBinary looks")
	}
}

func TestRedactedError(t *testing.T) {
	const secret = "s3cr3t-token"
	err := &redactedError{err: errors.Join(context.DeadlineExceeded, errors.New("log: token "+secret)), secret: secret}
	if strings.Contains(err.Error(), secret) {
		t.Errorf("Error() = %q, shows the secret", err)
	}
	if !strings.Contains(err.Error(), "token <redacted root token>") {
		t.Errorf("Error() = %q, lacks the redaction mark", err)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Error("errors.Is does not see through redactedError")
	}
	if got := redact("abc", ""); got != "abc" {
		t.Errorf("redact with no secret = %q", got)
	}
}
