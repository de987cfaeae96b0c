"""An Airflow DAG that launches the img2txt caption Flex Template every night (incremental).

Copy it into your Airflow dags/ folder; it needs apache-airflow-providers-google.
The template is built from jobs/dataflow/ (see README, "Scheduling").
"""
import datetime

from airflow import DAG
from airflow.providers.google.cloud.operators.dataflow import DataflowStartFlexTemplateOperator

PROJECT = 'my-project'
REGION = 'us-central1'

with DAG('img2txt_caption', schedule='30 2 * * *', start_date=datetime.datetime(2026, 12, 1), catchup=False) as dag:
    DataflowStartFlexTemplateOperator(
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
                'output': 'gs://my-bucket/captions',
                'incremental': 'true',
                'run_id': '{{ ts_nodash }}',
            },
            'environment': {'tempLocation': 'gs://my-bucket/tmp',
                            'sdkContainerImage': f'{REGION}-docker.pkg.dev/{PROJECT}/img2txt/caption:0.1.0'},
        }},
    )
