package slurm

// For the external tests.
var (
	LabTemplate = labTemplate
	Load        = load
)
