#!/bin/sh
# preStop of the database container. Kubernetes stops a pod's main containers before its
# sidecars, so without this mysqld would go down under a primary's agent and cost a failover.
# Instead the agent gets SIGTERM first (the pod shares one process namespace), hands the primary
# role over and leaves, and only then does mysqld stop. The grace period bounds the wait.
for p in /proc/[0-9]*; do
  if [ "$(cat "$p/comm" 2>/dev/null)" = shoal ]; then
    pid=${p#/proc/}
    kill -TERM "$pid" 2>/dev/null || exit 0
    while kill -0 "$pid" 2>/dev/null; do sleep 1; done
    exit 0
  fi
done
