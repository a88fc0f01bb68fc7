// `make test SANITIZE=1` preloads this into the Open MPI runs of tests/cli/train_mpi.sh:
// Open MPI unloads its components at exit, and the allocations they keep until then would
// show in LeakSanitizer's report with no module name, so tests/sanitize.supp could not tell
// them from ours. With dlclose doing nothing, they keep their names.
int dlclose(void *handle);
int dlclose(void *handle)
{
	(void)handle;
	return 0;
}
