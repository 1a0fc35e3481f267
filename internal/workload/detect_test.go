package workload

import (
	"strings"
	"testing"
)

// TestDetect lists each credential the detector must find beside the
// near miss it must not.
func TestDetect(t *testing.T) {
	tests := []struct {
		name, value string
		want        string // the Reason, or "" for no detection
		field       string
	}{
		// Passwords: any literal that is not a placeholder or a setting.
		{"DB_PASSWORD", "KEYHOLE-CANARY-pw", "literal value under a password name", ""},
		{"MYSQL_ROOT_PASSWORD", "hunter2!", "literal value under a password name", ""},
		{"PGPASSWORD", "s3cr3t-KEYHOLE-CANARY", "literal value under a password name", ""},
		{"redisPass", "KEYHOLE-CANARY", "literal value under a password name", ""},
		{"DB_PASSWORD_PROD", "KEYHOLE-CANARY-prod", "literal value under a password name", ""},
		{"DB_PASSWORD", "correct horse battery staple", "literal value under a password name", ""},
		{"DB_PASSWORD_FILE", "/run/secrets/db", "", ""},
		{"DB_PASSWORD_FILE", "KEYHOLE-CANARY-not-a-path", "", ""}, // the name says it is a file name
		{"DB_PASSWORD_PATH", "./secrets/db", "", ""},
		{"DB_PASSWORD", "$(DB_PASSWORD_FROM_SECRET)", "", ""},
		{"DB_PASSWORD", "$$(ESCAPED)", "", ""},
		{"DB_PASSWORD", "${DB_PASSWORD}", "", ""},
		{"DB_PASSWORD", "{{ .Values.db.password }}", "", ""},
		{"DB_PASSWORD", "changeme", "", ""},
		{"DB_PASSWORD", "CHANGE_ME", "", ""},
		{"DB_PASSWORD", "REPLACE_ME", "", ""},
		{"DB_PASSWORD", "<db password>", "", ""},
		{"DB_PASSWORD", "xxxxxxxx", "", ""},
		{"DB_PASSWORD", "********", "", ""},
		{"DB_PASSWORD", "example-password", "", ""},
		{"DB_PASSWORD", "dummy", "", ""},
		{"DB_PASSWORD", "test", "", ""},
		{"DB_PASSWORD", "password", "", ""},
		{"DB_PASSWORD", "your-password-here", "", ""},
		{"DB_PASSWORD", "", "", ""},
		{"DB_PASSWORD", "   ", "", ""},
		{"DB_PASSWORD", "abc", "", ""}, // too short to judge
		{"DB_PASSWORD", "123456", "", ""},
		{"DB_PASSWORD", "vault:secret/data/db#password", "", ""},
		{"DB_PASSWORD", "arn:aws:secretsmanager:eu-west-1:1:secret:db", "", ""},
		{"DB_PASSWORD_MIN_LENGTH", "12", "", ""},
		{"PASSWORD_ENCODER", "bcrypt", "", ""},
		{"PWD", "/app", "", ""},
		{"BYPASS", "KEYHOLE-CANARY", "", ""},
		// Tokens, secrets and keys: the literal must also look random.
		{"API_TOKEN", "KEYHOLE-CANARY-7fQ2xL9pWz4mN8vR", "random-looking literal under a token, secret or key name", ""},
		{"CLIENT_SECRET", "9f86d081884c7d659a2feaa0c55ad015", "random-looking literal under a token, secret or key name", ""},
		{"STRIPE_KEY", "KEYHOLE-CANARY-Zx81kPq0Lr7t", "random-looking literal under a token, secret or key name", ""},
		{"apiKey", "3f2a8c1e-7b4d-4e9a-9c2f-1a2b3c4d5e6f", "random-looking literal under a token, secret or key name", ""},
		{"SECRET_KEY_BASE", "KEYHOLE-CANARY-a9S8d7F6g5H4j3K2", "random-looking literal under a token, secret or key name", ""},
		{"TOKEN_TTL", "3600", "", ""},
		{"TOKEN_TTL", "KEYHOLE-CANARY-7fQ2xL9pWz4mN8vR", "", ""},
		{"TOKEN_URL", "https://auth.example.org/token", "", ""},
		{"TOKEN_ENDPOINT", "https://auth.internal/oauth/token", "", ""},
		{"SECRET_NAME", "db-credentials", "", ""},
		{"DB_SECRET", "db-credentials", "", ""},
		{"APP_SECRET", "my-app-secret-v2", "", ""},
		{"SESSION_SECRET", "short", "", ""},
		{"AWS_ACCESS_KEY_ID", "not-an-aws-key", "", ""},
		{"CACHE_KEY", "user-session-prefix", "", ""},
		{"ENABLE_TOKEN_AUTH", "true", "", ""},
		{"TOKEN_REFRESH", "30m", "", ""},
		{"TOKEN", "sk_test_xxxxxxxxxxxxxxxxxxxx", "", ""},
		// Formats recognised whatever the name.
		{"CONFIG", "AKIAZ7KEYHOLECANARY1", "AWS access key ID", ""},
		{"AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE", "", ""},
		{"GH", "ghp_KEYHOLECANARY0123456789abcdefghijklmn", "GitHub token", ""},
		{"NOTIFY", "xoxb-KEYHOLE-CANARY-1234567890", "Slack token", ""},
		{"HOOK", "https://hooks.slack.com/services/T0000KEYHOLE/B0000CANARY/KEYHOLECANARYxyz", "Slack webhook URL", ""},
		{"BLOB", "-----BEGIN RSA PRIVATE KEY-----\nKEYHOLE-CANARY\n-----END RSA PRIVATE KEY-----", "private key", ""},
		{"CERT", "-----BEGIN CERTIFICATE-----\nKEYHOLE-CANARY\n-----END CERTIFICATE-----", "", ""},
		{"SESSION", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJrZXlob2xlIn0.KEYHOLE-CANARY-signature", "JSON Web Token", ""},
		{"HEADER", "Authorization: Bearer KEYHOLE-CANARY-9fQ2xL7pWz4mN8vR", "HTTP authorization credential", ""},
		{"HEADER", "Authorization: Bearer authenticationMethod", "", ""},
		{"DATABASE_URL", "postgres://app:KEYHOLE-CANARY@db:5432/app", "URL with an embedded password", ""},
		{"DATABASE_URL", "postgres://app:$(DB_PASSWORD)@db:5432/app", "", ""},
		{"DATABASE_URL", "postgres://app:${DB_PASSWORD}@db:5432/app", "", ""},
		{"DATABASE_URL", "postgres://app:password@localhost/app", "", ""},
		{"DATABASE_URL", "postgres://app@db:5432/app", "", ""},
		// Fields inside structured values.
		{"JAVA_OPTS", "-Xmx1g -Ddb.password=KEYHOLE-CANARY-jvm -Dfoo=bar", "literal value under a password name", "db.password"},
		{"CONN", "Server=db;User Id=sa;Password=KEYHOLE-CANARY;", "literal value under a password name", "Password"},
		{"application.yaml", "spring:\n  datasource:\n    password: KEYHOLE-CANARY-yaml\n", "literal value under a password name", "password"},
		{"application.yaml", "spring:\n  datasource:\n    password: ${DB_PASSWORD}\n    password-file: /run/secrets/db\n", "", ""},
		{"settings.json", `{"api_token": "KEYHOLE-CANARY-Qw8eR7tY6uI5oP4a"}`, "random-looking literal under a token, secret or key name", "api_token"},
		{"app.properties", "db.url=jdbc:postgresql://db/app\ndb.password=KEYHOLE-CANARY-props\n", "literal value under a password name", "db.password"},
		{"config.xml", "<config><password>KEYHOLE-CANARY-xml</password></config>", "literal value under a password name", "password"},
		{"ARGS", "--db-password=KEYHOLE-CANARY-flag --verbose", "literal value under a password name", "db-password"},
		{"kubeconfig", "users:\n- name: admin\n  user:\n    client-certificate-data: LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0t\n    client-key-data: S0VZSE9MRS1DQU5BUlktY2xpZW50LWtleS1kYXRh\n", "random-looking literal under a token, secret or key name", "client-key-data"},
		{"nginx.conf", "server { listen 80; }", "", ""},
		{"app.properties", "token.ttl=3600\nsecret.name=db-credentials\n", "", ""},
	}
	for _, tt := range tests {
		d, ok := Detect(tt.name, tt.value)
		if got := map[bool]string{true: d.Reason}[ok]; got != tt.want || d.Field != tt.field {
			t.Errorf("Detect(%q, %q) = %q field %q, want %q field %q", tt.name, tt.value, got, d.Field, tt.want, tt.field)
		}
	}
}

func TestWords(t *testing.T) {
	for in, want := range map[string]string{
		"DB_PASSWORD":                "db password",
		"clientSecret":               "client secret",
		"APIKey":                     "api key",
		"spring.datasource.password": "spring datasource password",
		"x-api-key":                  "x api key",
		"PGPASSWORD":                 "pgpassword",
		"tokenV2":                    "token v2",
	} {
		if got := strings.Join(words(in), " "); got != want {
			t.Errorf("words(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestLengthClass(t *testing.T) {
	for n, want := range map[int]string{0: "under 16 characters", 15: "under 16 characters", 16: "16 to 63 characters", 64: "64 characters or more"} {
		if got := LengthClass(n); got != want {
			t.Errorf("LengthClass(%d) = %q, want %q", n, got, want)
		}
	}
}

// FuzzDetect: the detector never panics, and what it returns never
// carries the value: the reason is one of the fixed phrases, and a field
// is a name found in the value (so it can hold no more of it than a name).
func FuzzDetect(f *testing.F) {
	for _, s := range []string{"KEYHOLE-CANARY", "password=KEYHOLE-CANARY", "postgres://a:KEYHOLE-CANARY@h", "<password>KEYHOLE-CANARY</password>", "eyJx.eyJy.z"} {
		f.Add("DB_PASSWORD", s)
	}
	reasons := map[string]bool{
		passwordName.reason(): true, tokenName.reason(): true, "URL with an embedded password": true,
	}
	for _, p := range valuePatterns {
		reasons[p.reason] = true
	}
	f.Fuzz(func(t *testing.T, name, value string) {
		d, ok := Detect(name, value)
		if !ok {
			return
		}
		if !reasons[d.Reason] {
			t.Fatalf("unknown reason %q", d.Reason)
		}
		if d.Field != "" && (len(d.Field) > 64 || nameClass(d.Field) == noCredential) {
			t.Fatalf("field %q is not a credential name", d.Field)
		}
		if d.Length <= 0 || d.Length > len(value) {
			t.Fatalf("length %d of a %d-byte value", d.Length, len(value))
		}
	})
}
