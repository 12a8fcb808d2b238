# Under the SLURM executor, before the first sbatch: every job's account, partition, GPUs, CPUs, memory and
# wall time against what the cluster reports (ual.cluster), so a wrong profile or experiment key fails once,
# naming the key and its value. Other executors, dry runs and --no-hooks: nothing. No rules here.
from snakemake.exceptions import WorkflowError
from snakemake.logging import logger

from ual.cluster import ClusterError, check_snakemake_jobs


onstart:
    if workflow.executor_plugin is not None and workflow.executor_plugin.name == "slurm":
        try:
            check_snakemake_jobs(
                [job for job in workflow.dag.needrun_jobs() if not job.is_local],  # localrules: not submitted
                set_resources=workflow.resource_settings.overwrite_resources,
                experiment_file=EXPERIMENT_FILE,
                partition_config=workflow.executor_settings.partition_config,
                logger=logger,
            )
        except ClusterError as exc:
            raise WorkflowError(str(exc)) from None
