package vault

import (
	"context"
	"errors"
	"fmt"

	"github.com/hashicorp/vault/api"
	kubeauth "github.com/hashicorp/vault/api/auth/kubernetes"
)

// Auth methods --vault-auth accepts.
const (
	AuthToken      = "token"
	AuthKubernetes = "kubernetes"
)

// DefaultServiceAccountTokenFile is where a pod's projected service
// account token is mounted.
const DefaultServiceAccountTokenFile = "/var/run/secrets/kubernetes.io/serviceaccount/token" //nolint:gosec // G101: a well-known path, not a credential.

// Auth says how to log in to Vault.
type Auth struct {
	// Method is AuthToken (VAULT_TOKEN) or AuthKubernetes.
	Method string
	// Role, Mount and TokenFile configure Kubernetes auth: the Vault
	// role, the auth method's mount path (default "kubernetes") and the
	// service account token to log in with.
	Role, Mount, TokenFile string
}

// CheckAuth validates the auth flags before anything is read.
func CheckAuth(a Auth) error {
	switch a.Method {
	case AuthToken:
		if a.Role != "" {
			return errors.New("--vault-role is for --vault-auth kubernetes")
		}
	case AuthKubernetes:
		if a.Role == "" {
			return errors.New("--vault-auth kubernetes needs --vault-role")
		}
		if a.Mount != "" {
			if err := checkSegments("--vault-auth-mount", a.Mount); err != nil {
				return err
			}
		}
	default:
		return fmt.Errorf("--vault-auth: unknown method %q (want token or kubernetes)", a.Method)
	}
	return nil
}

// NewClient returns a Vault client for address, logged in as a says.
// api.DefaultConfig reads the standard environment (VAULT_CACERT,
// VAULT_CAPATH, VAULT_CLIENT_CERT, VAULT_SKIP_VERIFY, VAULT_NAMESPACE,
// ...); address, when set, wins over VAULT_ADDR. With AuthToken the
// token is VAULT_TOKEN's.
func NewClient(ctx context.Context, address string, a Auth) (*api.Client, error) {
	if err := CheckAuth(a); err != nil {
		return nil, err
	}
	cfg := api.DefaultConfig()
	if cfg.Error != nil {
		return nil, fmt.Errorf("vault client configuration from the VAULT_ environment: %s", oneLine(cfg.Error.Error()))
	}
	if address != "" {
		cfg.Address = address
	}
	client, err := api.NewClient(cfg)
	if err != nil {
		return nil, fmt.Errorf("vault client for %s: %s", cfg.Address, oneLine(err.Error()))
	}
	switch a.Method {
	case AuthToken:
		if client.Token() == "" {
			return nil, errors.New("no Vault token: set VAULT_TOKEN, or use --vault-auth kubernetes")
		}
	case AuthKubernetes:
		client.ClearToken()
		mount, file := a.Mount, a.TokenFile
		if mount == "" {
			mount = kubernetesAuthPath
		}
		if file == "" {
			file = DefaultServiceAccountTokenFile
		}
		method, err := kubeauth.NewKubernetesAuth(a.Role, kubeauth.WithMountPath(mount), kubeauth.WithServiceAccountTokenPath(file))
		if err != nil {
			return nil, fmt.Errorf("vault kubernetes auth: %s", oneLine(err.Error()))
		}
		secret, err := client.Auth().Login(ctx, method)
		if err != nil {
			// The library's error may quote the file's name, never the
			// token; the Vault part is reduced to its status and
			// messages.
			return nil, fmt.Errorf("vault kubernetes login at auth/%s as role %s with the token in %s: %s", mount, a.Role, file, vaultReason(err))
		}
		if secret == nil || secret.Auth == nil || secret.Auth.ClientToken == "" {
			return nil, fmt.Errorf("vault kubernetes login at auth/%s as role %s: no token returned", mount, a.Role)
		}
	}
	return client, nil
}
