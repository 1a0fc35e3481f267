package encryption

// LineName is lineName, for the external tests that capture samples.
var LineName = lineName
