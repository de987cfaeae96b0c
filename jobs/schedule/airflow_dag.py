"""An Airflow DAG that launches the img2txt caption Flex Template every night (incremental).

Copy it into your Airflow dags/ folder; it needs apache-airflow-providers-google.
The template is built from jobs/dataflow/ (see README, "Scheduling").

When last night's job still holds the output's lease (OUTPUT/lease.json, whose
fields img2txt's schemas/lease.py defines), tonight's launch is skipped, still
running: ``output_is_free`` short-circuits it, and the next night catches up.
The job also takes the lease itself, so a launch that races past the check
fails at its first step, naming the holder, and writes nothing.
"""
import datetime
import json

from airflow import DAG
from airflow.operators.python import ShortCircuitOperator
from airflow.providers.google.cloud.hooks.gcs import GCSHook
from airflow.providers.google.cloud.operators.dataflow import DataflowStartFlexTemplateOperator

PROJECT = 'my-project'
REGION = 'us-central1'
OUTPUT_BUCKET = 'my-bucket'
OUTPUT_PREFIX = 'captions'


def output_is_free():
    """False (skip tonight's launch) while a run holds a live lease on the output."""
    hook = GCSHook()
    name = f'{OUTPUT_PREFIX}/lease.json'
    if not hook.exists(OUTPUT_BUCKET, name):
        return True
    lease = json.loads(hook.download(OUTPUT_BUCKET, name))
    age = datetime.datetime.now(datetime.timezone.utc) - datetime.datetime.fromisoformat(lease['heartbeat_at'])
    if age.total_seconds() > float(lease['timeout_seconds']):
        return True  # its run was killed: tonight's job takes the lease over
    print(f"skipped, still running: run {lease['run_id']}, started {lease['started_at']} on {lease['where']}")
    return False


with DAG('img2txt_caption', schedule='30 2 * * *', start_date=datetime.datetime(2026, 12, 1), catchup=False) as dag:
    check = ShortCircuitOperator(task_id='output_is_free', python_callable=output_is_free)
    launch = DataflowStartFlexTemplateOperator(
        task_id='caption_new_photos',
        project_id=PROJECT,
        location=REGION,
        wait_until_finished=True,
        body={'launchParameter': {
            'jobName': 'img2txt-caption-{{ ds_nodash }}',
            'containerSpecGcsPath': 'gs://my-bucket/templates/caption.json',
            'parameters': {
                'model': 'gs://my-bucket/runs/1/export/125000',
                'input': 'gs://my-photos/**',
                'output': f'gs://{OUTPUT_BUCKET}/{OUTPUT_PREFIX}',
                'incremental': 'true',
                'run_id': '{{ ts_nodash }}',
            },
            'environment': {'tempLocation': 'gs://my-bucket/tmp',
                            'sdkContainerImage': f'{REGION}-docker.pkg.dev/{PROJECT}/img2txt/caption:0.1.0'},
        }},
    )
    check >> launch
