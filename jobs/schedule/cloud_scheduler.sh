#!/usr/bin/env bash
# Cloud Scheduler: launch the img2txt caption Flex Template every night at 02:30 (incremental).
# Needs a service account allowed to launch Dataflow jobs (roles/dataflow.developer) and to read
# and write the buckets. The template is built from jobs/dataflow/ (see README, "Scheduling").
# Cloud Scheduler only submits the launch. When last night's job still holds the output's lease
# (gs://my-bucket/captions/lease.json), tonight's is skipped, still running: the launcher exits with
# status 75 and the line "img2txt caption: skipped: ... is leased by run ..." in the launch's log, or,
# had both jobs started at once, the later job fails at its first step with that line. Nothing is written
# either way, and the next night catches up.
set -euo pipefail
PROJECT=${PROJECT:-my-project}
REGION=${REGION:-us-central1}
SERVICE_ACCOUNT=${SERVICE_ACCOUNT:-img2txt-scheduler@${PROJECT}.iam.gserviceaccount.com}

gcloud scheduler jobs create http img2txt-caption-nightly \
  --project "$PROJECT" --location "$REGION" --schedule '30 2 * * *' --time-zone UTC \
  --http-method POST \
  --uri "https://dataflow.googleapis.com/v1b3/projects/${PROJECT}/locations/${REGION}/flexTemplates:launch" \
  --oauth-service-account-email "$SERVICE_ACCOUNT" \
  --message-body "{
    \"launchParameter\": {
      \"jobName\": \"img2txt-caption-nightly\",
      \"containerSpecGcsPath\": \"gs://my-bucket/templates/caption.json\",
      \"parameters\": {
        \"model\": \"gs://my-bucket/runs/1/export/125000\",
        \"input\": \"gs://my-photos/**\",
        \"output\": \"gs://my-bucket/captions\",
        \"incremental\": \"true\"
      },
      \"environment\": {\"tempLocation\": \"gs://my-bucket/tmp\",
                       \"sdkContainerImage\": \"${REGION}-docker.pkg.dev/${PROJECT}/img2txt/caption:0.1.0\"}
    }
  }"
