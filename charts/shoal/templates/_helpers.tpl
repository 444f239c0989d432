{{/* Names. The fullname is also the shoal cluster's name, so it must be a DNS label. */}}
{{- define "shoal.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "shoal.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "shoal.headless" -}}{{ include "shoal.fullname" . }}-headless{{- end -}}

{{- define "shoal.selectorLabels" -}}
app.kubernetes.io/name: {{ include "shoal.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "shoal.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "shoal.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
shoal.io/cluster: {{ include "shoal.fullname" . }}
{{- end -}}

{{- define "shoal.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "shoal.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* Secret names: the user's when given, else the chart's. */}}
{{- define "shoal.authSecret" -}}{{ default (printf "%s-auth" (include "shoal.fullname" .)) .Values.auth.existingSecret }}{{- end -}}
{{- define "shoal.gossipSecret" -}}{{ default (printf "%s-gossip" (include "shoal.fullname" .)) .Values.gossip.existingSecret }}{{- end -}}
{{- define "shoal.adminSecret" -}}{{ default (printf "%s-admin" (include "shoal.fullname" .)) .Values.admin.existingSecret }}{{- end -}}
{{- define "shoal.tlsSecret" -}}{{ default (printf "%s-tls" (include "shoal.fullname" .)) .Values.tls.existingSecret }}{{- end -}}

{{- define "shoal.mysqlImage" -}}
{{- $repo := .Values.mysql.image.repository | default (ternary "docker.io/library/mysql" "docker.io/library/mariadb" (eq .Values.flavor "mysql")) -}}
{{- $tag := .Values.mysql.image.tag | default (ternary "9.7" "11.8" (eq .Values.flavor "mysql")) -}}
{{- printf "%s:%s" $repo $tag -}}
{{- end -}}

{{- define "shoal.agentImage" -}}
{{- printf "%s:%s" .Values.agent.image.repository (.Values.agent.image.tag | default .Chart.AppVersion) -}}
{{- end -}}

{{/* The server program of the flavor, by absolute path: the images' entrypoints are not used. */}}
{{- define "shoal.mysqld" -}}{{ ternary "/usr/sbin/mysqld" "/usr/sbin/mariadbd" (eq .Values.flavor "mysql") }}{{- end -}}

{{/* The stable DNS name of member $i: <fullname>-<i>.<headless>.<namespace>.svc.<domain>. */}}
{{- define "shoal.memberHost" -}}
{{- printf "%s-%d.%s.%s.svc.%s" (include "shoal.fullname" .root) (int .i) (include "shoal.headless" .root) .root.Release.Namespace .root.Values.clusterDomain -}}
{{- end -}}

{{/* Paths shared by the containers. */}}
{{- define "shoal.dataDir" -}}/data/mysql{{- end -}}
{{- define "shoal.socket" -}}/run/mysqld/mysqld.sock{{- end -}}

{{/* The data volume: per pod (a PVC, an emptyDir, or the pod's own subdirectory of hostPath). */}}
{{- define "shoal.dataMount" -}}
- name: data
  mountPath: /data
  {{- if eq .Values.storage.type "hostPath" }}
  subPathExpr: $(POD_NAME)
  {{- end }}
{{- end -}}

{{- define "shoal.containerSecurity" -}}
allowPrivilegeEscalation: false
capabilities:
  drop: [ALL]
{{- end -}}

{{/*
The ClusterRole reading Nodes for healing: cluster-wide, so the namespace is in its name.
*/}}
{{- define "shoal.nodeReader" -}}
{{- printf "%s-%s-nodes" .Release.Namespace (include "shoal.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
