package deploytest

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	"sigs.k8s.io/yaml"
)

const dockerfilePath = "../../Dockerfile"

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct {
	cmd  string // upper case: FROM, RUN, USER...
	args string
	line int
}

// stage is one FROM and the instructions after it.
type stage struct {
	from         string // the image reference
	name         string // AS name, if any
	instructions []instruction
}

// parseDockerfile splits a Dockerfile into stages. It reads the subset of
// the syntax the project's Dockerfile uses: comments, continuation
// backslashes, one instruction per logical line.
func parseDockerfile(t *testing.T, path string) []stage {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var stages []stage
	var logical strings.Builder
	start := 0
	for i, raw := range strings.Split(string(data), "\n") {
		line := strings.TrimSpace(raw)
		if logical.Len() == 0 {
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			start = i + 1
		}
		if strings.HasSuffix(line, `\`) {
			logical.WriteString(strings.TrimSuffix(line, `\`) + " ")
			continue
		}
		logical.WriteString(line)
		cmd, args, _ := strings.Cut(logical.String(), " ")
		logical.Reset()
		in := instruction{cmd: strings.ToUpper(cmd), args: strings.TrimSpace(args), line: start}
		if in.cmd == "FROM" {
			f := strings.Fields(in.args)
			st := stage{from: f[0]}
			if len(f) == 3 && strings.EqualFold(f[1], "AS") {
				st.name = f[2]
			}
			stages = append(stages, st)
			continue
		}
		if len(stages) == 0 {
			t.Fatalf("%s:%d: %s before the first FROM", path, start, in.cmd)
		}
		stages[len(stages)-1].instructions = append(stages[len(stages)-1].instructions, in)
	}
	return stages
}

var (
	// imageRef is registry/name:tag with an optional @sha256 digest.
	imageRef = regexp.MustCompile(`^([a-z0-9./_-]+):([A-Za-z0-9._-]+)(@sha256:[0-9a-f]{64})?$`)
	// versionTag is a tag that names a version: it holds a dotted number.
	versionTag = regexp.MustCompile(`[0-9]+\.[0-9]+`)
)

// TestDockerfile checks the image's structure, since no Docker engine
// runs here: a multi-stage build whose Go binary is static, on a final
// stage that has git (keyhole reads history with the git CLI) and runs as
// the non-root uid the manifests run as; every base image pinned to an
// exact version tag (never latest), with a well-formed digest if any; the
// build stage's Go at least go.mod's.
func TestDockerfile(t *testing.T) {
	stages := parseDockerfile(t, dockerfilePath)
	if len(stages) < 2 {
		t.Fatalf("%d stages, want a multi-stage build", len(stages))
	}
	for _, st := range stages {
		m := imageRef.FindStringSubmatch(st.from)
		switch {
		case m == nil:
			t.Errorf("FROM %s: not image:tag[@sha256:digest]", st.from)
		case m[2] == "latest" || !versionTag.MatchString(m[2]):
			t.Errorf("FROM %s: tag %q is not an exact version", st.from, m[2])
		}
	}

	build, final := stages[0], stages[len(stages)-1]
	var goBuild string
	for _, in := range build.instructions {
		if in.cmd == "RUN" && strings.Contains(in.args, "go build") {
			goBuild = in.args
		}
	}
	if !strings.Contains(goBuild, "CGO_ENABLED=0") || !strings.Contains(goBuild, "./cmd/keyhole") {
		t.Errorf("the build stage's go build %q must build ./cmd/keyhole with CGO_ENABLED=0", goBuild)
	}
	checkGoVersion(t, build.from)

	var user, entrypoint string
	installsGit, copiesBinary := false, false
	for _, in := range final.instructions {
		switch in.cmd {
		case "USER":
			user = in.args
		case "ENTRYPOINT":
			entrypoint = in.args
		case "RUN":
			installsGit = installsGit || regexp.MustCompile(`\b(apk add|apt-get install)\b.*\bgit\b`).MatchString(in.args)
		case "COPY":
			copiesBinary = copiesBinary || strings.Contains(in.args, "--from="+build.name)
		}
	}
	if !installsGit {
		t.Errorf("the final stage (%s) does not install git, which keyhole audit --git and serve --git-repo run", final.from)
	}
	if !copiesBinary || !strings.Contains(entrypoint, "keyhole") {
		t.Errorf("the final stage must copy the binary from %q and run it: COPY found %v, ENTRYPOINT %q", build.name, copiesBinary, entrypoint)
	}
	uid, _, _ := strings.Cut(user, ":")
	n, err := strconv.Atoi(uid)
	if err != nil || n == 0 {
		t.Fatalf("USER %q: want a numeric non-root uid, so that runAsNonRoot can verify it", user)
	}

	// The manifests run as the same uid.
	var d appsv1.Deployment
	data, err := os.ReadFile(filepath.Join(base, "deployment.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, &d); err != nil {
		t.Fatal(err)
	}
	for _, c := range d.Spec.Template.Spec.Containers {
		if c.Name != "keyhole" {
			continue
		}
		if c.SecurityContext == nil || c.SecurityContext.RunAsUser == nil || *c.SecurityContext.RunAsUser != int64(n) {
			t.Errorf("the Deployment's keyhole container does not run as the image's uid %d", n)
		}
	}
}

// checkGoVersion: the golang image's Go is at least go.mod's go line.
func checkGoVersion(t *testing.T, from string) {
	t.Helper()
	m := regexp.MustCompile(`^golang:([0-9]+)\.([0-9]+)\.([0-9]+)`).FindStringSubmatch(from)
	if m == nil {
		t.Errorf("build stage %s: want golang:X.Y.Z-...", from)
		return
	}
	data, err := os.ReadFile("../../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	g := regexp.MustCompile(`(?m)^go ([0-9]+)\.([0-9]+)(?:\.([0-9]+))?$`).FindStringSubmatch(string(data))
	if g == nil {
		t.Fatal("go.mod has no go line")
	}
	have, want := [3]int{}, [3]int{}
	for i := range 3 {
		have[i], _ = strconv.Atoi(m[i+1])
		want[i], _ = strconv.Atoi(g[i+1])
	}
	for i := range 3 {
		if have[i] != want[i] {
			if have[i] < want[i] {
				t.Errorf("build stage %s is older than go.mod's go %s.%s.%s", from, g[1], g[2], g[3])
			}
			return
		}
	}
}

// TestPinImages runs deploy/image/pin-images.sh with a stand-in crane:
// every FROM gains its digest, the rest of the file is unchanged, and a
// second run changes nothing.
func TestPinImages(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	if err := os.Mkdir(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	crane := "#!/bin/sh\n[ \"$1\" = digest ] || exit 2\nprintf 'sha256:%s\\n' $(printf '%s' \"$2\" | sha256sum | cut -c1-64)\n"
	if err := os.WriteFile(filepath.Join(bin, "crane"), []byte(crane), 0o755); err != nil {
		t.Fatal(err)
	}
	orig, err := os.ReadFile(dockerfilePath)
	if err != nil {
		t.Fatal(err)
	}
	df := filepath.Join(dir, "Dockerfile")
	if err := os.WriteFile(df, orig, 0o644); err != nil {
		t.Fatal(err)
	}
	pin := func() string {
		t.Helper()
		cmd := exec.Command("bash", "../../deploy/image/pin-images.sh", df)
		cmd.Env = append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"))
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("pin-images: %v\n%s", err, out)
		}
		data, err := os.ReadFile(df)
		if err != nil {
			t.Fatal(err)
		}
		return string(data)
	}
	pinned := pin()
	stages := parseDockerfile(t, df)
	for _, st := range stages {
		if m := imageRef.FindStringSubmatch(st.from); m == nil || m[3] == "" {
			t.Errorf("FROM %s was not pinned", st.from)
		}
	}
	if len(stages) != len(parseDockerfile(t, dockerfilePath)) ||
		strings.Count(pinned, "\n") != strings.Count(string(orig), "\n") {
		t.Errorf("pinning changed more than the FROM lines:\n%s", pinned)
	}
	if again := pin(); again != pinned {
		t.Errorf("a second run changed the file:\n%s", again)
	}
}
