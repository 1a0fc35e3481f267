package finding

// Override changes a catalog rule for one run, as the config file asks:
// another severity for its findings, or no findings at all.
type Override struct {
	// Disabled rules raise no findings; the report's coverage says so.
	Disabled bool
	// Severity, when set, replaces the severity of every finding of the
	// rule.
	Severity *Severity
}
