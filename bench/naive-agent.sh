#!/bin/bash
# The seed document's "GitOps Sync Agent for Docker Swarm" (shared/seed/
# gitops-workflow-strategy.md), as written there, for the benchmark's naive contender:
# loop { git fetch; git reset --hard; compare HEAD with the last applied commit;
# docker stack deploy; sleep }. Changed for the bench only: the settings, the stack
# name and the state file come from the environment; the configs/secrets steps are left
# out (the bench repositories have none); a line is printed when the deploy starts and
# ends, which the benchmark timestamps as it reads them.
set -euo pipefail

REPO_URL="${REPO_URL:?}"
REPO_DIR="${REPO_DIR:?}"
ENVIRONMENT="${ENVIRONMENT:-production}"
SYNC_INTERVAL="${SYNC_INTERVAL:-60}"
STACK="${STACK:-medianest}"
STATE_FILE="${STATE_FILE:?}"

sync_configuration() {
    echo "syncing"

    # Clone or update repository
    if [[ -d "$REPO_DIR" ]]; then
        cd "$REPO_DIR"
        git fetch origin
        git reset --hard origin/main
    else
        git clone "$REPO_URL" "$REPO_DIR"
        cd "$REPO_DIR"
    fi

    # Check for changes
    CURRENT_COMMIT=$(git rev-parse HEAD)
    LAST_APPLIED_COMMIT=$(cat "$STATE_FILE" 2>/dev/null || echo "")

    if [[ "$CURRENT_COMMIT" != "$LAST_APPLIED_COMMIT" ]]; then
        echo "deploying $CURRENT_COMMIT"
        apply_configuration
        echo "$CURRENT_COMMIT" > "$STATE_FILE"
        echo "deployed $CURRENT_COMMIT"
    fi
}

apply_configuration() {
    local env_path="environments/$ENVIRONMENT"

    if [[ ! -d "$env_path" ]]; then
        echo "Environment $ENVIRONMENT not found"
        return 1
    fi

    if [[ -f "$env_path/docker-compose.yml" ]]; then
        docker stack deploy -c "$env_path/docker-compose.yml" "$STACK"
    fi
}

# Main sync loop
while true; do
    sync_configuration
    sleep "$SYNC_INTERVAL"
done
