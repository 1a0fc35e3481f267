package report

import (
	"encoding/json"
	"io"
	"net/url"
	"strings"
	"unicode"

	"github.com/keyhole-sec/keyhole/internal/finding"
)

// SARIF 2.1.0, as GitHub code scanning and other SARIF viewers read it. The
// schema URI names the OASIS standard with its approved errata, the same
// document the tests validate against (testdata/sarif).
const (
	sarifVersion = "2.1.0"
	sarifSchema  = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
	// informationURI is the project's home page, named by the SARIF tool
	// descriptor.
	informationURI = "https://github.com/keyhole-sec/keyhole"
	// fingerprintKey versions keyhole's fingerprint scheme in
	// partialFingerprints, so that a future scheme can sit beside it.
	fingerprintKey = "keyhole/v1"
)

type sarifLog struct {
	Schema  string     `json:"$schema"`
	Version string     `json:"version"`
	Runs    []sarifRun `json:"runs"`
}

type sarifRun struct {
	Tool        sarifTool         `json:"tool"`
	Invocations []sarifInvocation `json:"invocations"`
	Results     []sarifResult     `json:"results"`
}

type sarifTool struct {
	Driver sarifDriver `json:"driver"`
}

type sarifDriver struct {
	Name           string      `json:"name"`
	Version        string      `json:"version,omitempty"`
	InformationURI string      `json:"informationUri"`
	Rules          []sarifRule `json:"rules"`
}

type sarifRule struct {
	ID                   string             `json:"id"`
	Name                 string             `json:"name,omitempty"`
	ShortDescription     *sarifText         `json:"shortDescription,omitempty"`
	FullDescription      *sarifText         `json:"fullDescription,omitempty"`
	HelpURI              string             `json:"helpUri,omitempty"`
	DefaultConfiguration *sarifRuleConfig   `json:"defaultConfiguration,omitempty"`
	Properties           *sarifRuleProperty `json:"properties,omitempty"`
}

type sarifText struct {
	Text string `json:"text"`
}

type sarifRuleConfig struct {
	Level string `json:"level"`
}

// sarifRuleProperty carries what GitHub code scanning reads from a rule:
// security-severity (a number as a string, 0.0 to 10.0) ranks the alert,
// and the "security" tag files it under security alerts.
type sarifRuleProperty struct {
	SecuritySeverity string   `json:"security-severity,omitempty"`
	Tags             []string `json:"tags"`
}

type sarifInvocation struct {
	ExecutionSuccessful        bool                `json:"executionSuccessful"`
	ToolExecutionNotifications []sarifNotification `json:"toolExecutionNotifications,omitempty"`
}

type sarifNotification struct {
	Level      string            `json:"level"`
	Message    sarifText         `json:"message"`
	Locations  []sarifLocation   `json:"locations,omitempty"`
	Properties map[string]string `json:"properties,omitempty"`
}

type sarifResult struct {
	RuleID              string             `json:"ruleId"`
	RuleIndex           int                `json:"ruleIndex"`
	Level               string             `json:"level"`
	Message             sarifText          `json:"message"`
	Locations           []sarifLocation    `json:"locations,omitempty"`
	PartialFingerprints map[string]string  `json:"partialFingerprints,omitempty"`
	Suppressions        []sarifSuppression `json:"suppressions,omitempty"`
	// Properties carry what SARIF has no field for: a git finding's
	// commits and whether HEAD holds the value, and the valueHash.
	Properties map[string]any `json:"properties,omitempty"`
}

type sarifLocation struct {
	PhysicalLocation *sarifPhysicalLocation `json:"physicalLocation,omitempty"`
	LogicalLocations []sarifLogicalLocation `json:"logicalLocations,omitempty"`
}

type sarifPhysicalLocation struct {
	ArtifactLocation sarifArtifactLocation `json:"artifactLocation"`
	Region           *sarifRegion          `json:"region,omitempty"`
}

type sarifArtifactLocation struct {
	URI string `json:"uri"`
}

type sarifRegion struct {
	StartLine int `json:"startLine"`
}

type sarifLogicalLocation struct {
	Name               string `json:"name,omitempty"`
	FullyQualifiedName string `json:"fullyQualifiedName,omitempty"`
	Kind               string `json:"kind,omitempty"`
}

type sarifSuppression struct {
	Kind          string `json:"kind"`
	Justification string `json:"justification,omitempty"`
}

// WriteSARIF writes the report as a SARIF 2.1.0 log with one run. The rules
// are the whole catalog, so that a viewer can describe a rule that has no
// result in this run; results carry keyhole's fingerprint so that code
// scanning tracks an alert across runs and file moves. Like every sink it
// prints only text the report already holds, which never includes a value.
func WriteSARIF(w io.Writer, r *Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(buildSARIF(r))
}

func buildSARIF(r *Report) sarifLog {
	catalog := finding.Catalog()
	rules := make([]sarifRule, 0, len(catalog))
	index := make(map[string]int, len(catalog))
	for _, rule := range catalog {
		index[rule.ID] = len(rules)
		rules = append(rules, sarifRuleFor(rule))
	}

	results := make([]sarifResult, 0, len(r.Findings))
	for _, f := range r.Findings {
		i, ok := index[f.Rule]
		if !ok {
			// A rule the catalog of this build does not know (a report
			// written by another version): describe it from the finding
			// itself so that ruleIndex always points at a descriptor.
			i = len(rules)
			index[f.Rule] = i
			rules = append(rules, sarifRuleFor(finding.Rule{ID: f.Rule, Title: f.Title, Severity: parseSeverityOr(f.Severity, finding.Medium)}))
		}
		results = append(results, sarifResultFor(f, i))
	}

	inv := sarifInvocation{ExecutionSuccessful: len(r.Errors) == 0}
	for _, e := range r.Errors {
		inv.ToolExecutionNotifications = append(inv.ToolExecutionNotifications, sarifNotificationFor(e))
	}

	name := r.Tool.Name
	if name == "" {
		name = "keyhole"
	}
	return sarifLog{
		Schema:  sarifSchema,
		Version: sarifVersion,
		Runs: []sarifRun{{
			Tool: sarifTool{Driver: sarifDriver{
				Name:           name,
				Version:        r.Tool.Version,
				InformationURI: informationURI,
				Rules:          rules,
			}},
			Invocations: []sarifInvocation{inv},
			Results:     results,
		}},
	}
}

func sarifRuleFor(rule finding.Rule) sarifRule {
	sr := sarifRule{
		ID:                   rule.ID,
		Name:                 ruleName(rule.Title),
		DefaultConfiguration: &sarifRuleConfig{Level: sarifLevel(rule.Severity.String())},
		Properties: &sarifRuleProperty{
			SecuritySeverity: securitySeverity[rule.Severity.String()],
			Tags:             []string{"security"},
		},
	}
	if rule.Title != "" {
		sr.ShortDescription = &sarifText{Text: rule.Title}
	}
	if rule.Summary != "" {
		sr.FullDescription = &sarifText{Text: rule.Summary}
	}
	if _, known := finding.Lookup(rule.ID); known {
		sr.HelpURI = rule.HelpURI()
	}
	return sr
}

func sarifResultFor(f Finding, ruleIndex int) sarifResult {
	res := sarifResult{
		RuleID:    f.Rule,
		RuleIndex: ruleIndex,
		Level:     sarifLevel(f.Severity),
		Message:   sarifText{Text: f.Message},
	}
	if loc := sarifLocationFor(f.Location, &f.Object); !loc.empty() {
		res.Locations = []sarifLocation{loc}
	}
	if f.Fingerprint != "" {
		res.PartialFingerprints = map[string]string{fingerprintKey: f.Fingerprint}
	}
	res.Properties = sarifProperties(f)
	if s := f.Suppressed; s != nil {
		kind := "external" // a baseline file, or anything else outside the object
		if s.By == "annotation" {
			kind = "inSource"
		}
		res.Suppressions = []sarifSuppression{{Kind: kind, Justification: s.Reason}}
	}
	return res
}

// sarifProperties are a finding's git facts and valueHash, nil when it
// has none.
func sarifProperties(f Finding) map[string]any {
	p := map[string]any{}
	if l := f.Location; l != nil {
		if l.Commit != "" {
			p["commit"] = l.Commit
		}
		if l.PresentAtHead != nil {
			p["presentAtHead"] = *l.PresentAtHead
		}
		if l.RemovedIn != "" {
			p["removedIn"] = l.RemovedIn
		}
	}
	if f.ValueHash != "" {
		p["valueHash"] = f.ValueHash
	}
	if len(p) == 0 {
		return nil
	}
	return p
}

// sarifLocationFor places a finding in the file it was read from, when it
// was read from one, and always names the Kubernetes object, which is what
// a finding from a live cluster has instead of a file.
func sarifLocationFor(l *Location, obj *ObjectRef) sarifLocation {
	var loc sarifLocation
	if l != nil && l.Path != "" {
		loc.PhysicalLocation = &sarifPhysicalLocation{ArtifactLocation: sarifArtifactLocation{URI: artifactURI(l.Path)}}
		if l.Line > 0 {
			loc.PhysicalLocation.Region = &sarifRegion{StartLine: l.Line}
		}
	}
	if obj != nil && (obj.Kind != "" || obj.Name != "") {
		loc.LogicalLocations = []sarifLogicalLocation{{
			Name:               obj.Name,
			FullyQualifiedName: obj.String(),
			Kind:               obj.Kind,
		}}
	}
	return loc
}

func (l sarifLocation) empty() bool {
	return l.PhysicalLocation == nil && len(l.LogicalLocations) == 0
}

func sarifNotificationFor(e Error) sarifNotification {
	text := e.Message
	if e.Impact != "" {
		text += " (" + e.Impact + ")"
	}
	n := sarifNotification{Level: "error", Message: sarifText{Text: text}}
	if e.Source != "" {
		n.Properties = map[string]string{"source": e.Source}
	}
	if loc := sarifLocationFor(e.Location, e.Object); !loc.empty() {
		n.Locations = []sarifLocation{loc}
	}
	return n
}

// artifactURI turns a path as the user typed it into a URI reference:
// forward slashes, and percent-encoding where a path character is not
// allowed in a URI (a space). A relative path stays relative, so that code
// scanning resolves it against the repository root.
func artifactURI(p string) string {
	p = strings.ReplaceAll(p, `\`, "/")
	if len(p) >= 3 && p[1] == ':' && p[2] == '/' && unicode.IsLetter(rune(p[0])) {
		// A Windows drive path: "C:/x" read as a URI would have the
		// scheme "C".
		return (&url.URL{Scheme: "file", Path: "/" + p}).String()
	}
	return (&url.URL{Path: p}).String()
}

// sarifLevel maps a keyhole severity to a SARIF level.
func sarifLevel(severity string) string {
	switch severity {
	case "critical", "high":
		return "error"
	case "low", "info":
		return "note"
	}
	return "warning"
}

// securitySeverity is the score GitHub code scanning ranks alerts by: above
// 9.0 is critical, 7.0 to 8.9 high, 4.0 to 6.9 medium, below 4.0 low.
var securitySeverity = map[string]string{
	"critical": "9.5",
	"high":     "8.0",
	"medium":   "5.5",
	"low":      "3.0",
	"info":     "1.0",
}

// ruleName derives the SARIF rule name, an identifier-like name for
// people, from the rule's title: "Secret readable by everyone" becomes
// "SecretReadableByEveryone", and "a ConfigMap's data" "AConfigMapsData".
func ruleName(title string) string {
	title = strings.NewReplacer("'", "", "’", "").Replace(title)
	var b strings.Builder
	for _, word := range strings.FieldsFunc(title, func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r)
	}) {
		rs := []rune(word)
		rs[0] = unicode.ToUpper(rs[0])
		b.WriteString(string(rs))
	}
	return b.String()
}

func parseSeverityOr(s string, def finding.Severity) finding.Severity {
	if sev, err := finding.ParseSeverity(s); err == nil {
		return sev
	}
	return def
}
