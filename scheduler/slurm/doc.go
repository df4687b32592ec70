// Package slurm lets a cluster use SLURM as its runtime scheduler
// (scheduler { type = "slurm" }). It is pure: it maps the template's
// nodes to SLURM node names, renders slurm.conf, and decodes what squeue,
// sinfo and ResumeProgram's SLURM_RESUME_FILE report, turning one reading
// of the queue into the scheduler.Signals that the elastic daemon
// consumes. Running the commands and the daemons is the caller's job:
// the argument lists it must use are exported next to their decoders.
//
// Names. A member ID ("cloud.zone-a.burst[3]") becomes a hostname-like
// SLURM node name ("cloud-zone-a-burst-3"), a site path becomes a
// partition of the same form, and sites and pool labels become node
// features ("cloud_zone_a", "arch_x86_64") that jobs can ask for with
// --constraint.
//
// Written against slurm-wlm 22.05 (Debian 12).
package slurm
