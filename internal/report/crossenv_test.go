package report

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
)

// crossEnvSecret is a prod Secret read from staging directly and from dev
// through a pod, by a subject whose name tries markup.
func crossEnvSecret(name string) Secret {
	return Secret{
		Namespace: "shop", Name: name, Type: "Opaque", Environment: "prod",
		Readers: Readers([]Reader{}...),
		CrossEnv: []CrossEnvRead{
			{FromEnvironment: "staging", Subject: Subject{Kind: "ServiceAccount", Namespace: "shop-staging", Name: "app"}, Path: "direct",
				Basis: "namespace", Namespaces: []string{"shop-staging"}},
			{FromEnvironment: "dev", Subject: Subject{Kind: "User", Name: "<b>mallory</b> @team"}, Path: "run-as-sa",
				Basis: "bindings", Namespaces: []string{"shop-dev", "shop-dev-2"}},
			{FromEnvironment: "dev", Subject: Subject{Kind: "User", Name: "ops-bot"}, Path: "node-escape",
				Basis: "path", Namespaces: []string{"sandbox"}},
		},
	}
}

func TestCrossEnvBasisText(t *testing.T) {
	s := crossEnvSecret("db")
	var got []string
	for _, c := range s.CrossEnv {
		got = append(got, c.BasisText())
	}
	want := []string{"namespace shop-staging", "bound only in shop-dev, shop-dev-2", "path starts in sandbox"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestCrossEnvTable(t *testing.T) {
	r := &Report{Secrets: []Secret{crossEnvSecret("db"), {Namespace: "shop", Name: "other", Environment: "prod"}}}
	var b bytes.Buffer
	if err := WriteTable(&b, r); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"CROSS-ENVIRONMENT READERS (KH610, docs/environments.md)",
		"shop       db      prod         staging  ServiceAccount/shop-staging/app  direct       namespace shop-staging",
		"shop       db      prod         dev      User/ops-bot                     node-escape  path starts in sandbox",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	// No section without cross-environment readers.
	b.Reset()
	if err := WriteTable(&b, &Report{Secrets: []Secret{{Namespace: "shop", Name: "other", Environment: "prod"}}}); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(b.String(), "CROSS-ENVIRONMENT") {
		t.Errorf("a section without readers:\n%s", b.String())
	}
}

// TestCrossEnvMarkdown: a row per Secret and lower environment, names
// escaped, and bounded: at most markdownTopSecrets rows and
// mdCrossEnvMaxReaders readers a row.
func TestCrossEnvMarkdown(t *testing.T) {
	md := mdCrossEnvironment([]Secret{crossEnvSecret("db")})
	for _, want := range []string{
		"### Readable from a lower environment (KH610)",
		"| `shop/db` | prod | staging | `ServiceAccount/shop-staging/app` (direct) |",
		"| `shop/db` | prod | dev | `User/<b>mallory</b> @team` (run-as-sa), `User/ops-bot` (node-escape) |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
	if mdCrossEnvironment([]Secret{{Namespace: "a", Name: "b", Environment: "prod"}}) != "" {
		t.Error("a section without readers")
	}

	many := crossEnvSecret("many")
	for i := range 5 {
		many.CrossEnv = append(many.CrossEnv, CrossEnvRead{FromEnvironment: "qa", Subject: Subject{Kind: "User", Name: fmt.Sprintf("u%d", i)}, Path: "direct", Basis: "bindings"})
	}
	var secrets []Secret
	for i := range 12 {
		s := crossEnvSecret(fmt.Sprintf("s%02d", i))
		if i == 0 {
			s = many
		}
		secrets = append(secrets, s)
	}
	md = mdCrossEnvironment(secrets)
	if rows := strings.Count(md, "\n| `shop/"); rows != markdownTopSecrets {
		t.Errorf("%d rows, want %d:\n%s", rows, markdownTopSecrets, md)
	}
	if !strings.Contains(md, "The first 10 of 25 Secrets and environments") {
		t.Errorf("no note on the rows left out:\n%s", md)
	}
	if !strings.Contains(md, "`User/u2` (direct) and 2 more |") {
		t.Errorf("readers not bounded:\n%s", md)
	}
}

func TestCrossEnvExplainTree(t *testing.T) {
	s := crossEnvSecret("db")
	var b bytes.Buffer
	if err := WriteExplainTree(&b, &s); err != nil {
		t.Fatal(err)
	}
	want := `environment prod: 3 readers from lower environments
  - from staging: ServiceAccount/shop-staging/app (direct; namespace shop-staging)
  - from dev: User/<b>mallory</b> @team (run-as-sa; bound only in shop-dev, shop-dev-2)
  - from dev: User/ops-bot (node-escape; path starts in sandbox)
`
	if !strings.Contains(b.String(), want) {
		t.Errorf("tree lacks\n%s\ngot:\n%s", want, b.String())
	}
	none := Secret{Namespace: "shop", Name: "db", Environment: "prod", Readers: Readers([]Reader{}...)}
	b.Reset()
	if err := WriteExplainTree(&b, &none); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "environment prod: no reader from a lower environment") {
		t.Errorf("tree:\n%s", b.String())
	}
	noEnv := Secret{Namespace: "shop", Name: "db", Readers: Readers([]Reader{}...)}
	b.Reset()
	if err := WriteExplainTree(&b, &noEnv); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(b.String(), "environment") {
		t.Errorf("an environment line without environments:\n%s", b.String())
	}
}
