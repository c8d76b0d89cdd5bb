#!/bin/bash
# check-docs: every log event, config key, error code, verb, reply, metric,
# peer message kind and STATUS key the code has is in docs/ (and every key in
# the sample config). Prints what is missing; exits 1 if anything is.
cd "$(dirname "$0")/.."
miss=0
chk() { # file word label
  grep -qF -- "\`$2\`" "$1" || grep -qF -- "$2" "$1" || { echo "MISSING in $1: $3 $2"; miss=1; }
}
# 1. log events: emit(/LogEvent(/log( with a literal name, plus Daemon's fail("name", ...)
events=$( { grep -rhoE '(\bemit|LogEvent|\blog)\(\s*[^,()]+,\s*"[a-z0-9_]+"' Sources --include=*.swift | grep -oE '"[a-z0-9_]+"$';
            grep -rhoE '\bfail\("[a-z0-9_]+"' Sources/MeshQNode | grep -oE '"[a-z0-9_]+"'; } | tr -d '"' | sort -u)
n=0; for e in $events; do n=$((n+1)); grep -qF "\`$e\`" docs/operations.md || { echo "MISSING event in operations.md: $e"; miss=1; }; done
echo "events checked: $n"
# 2. config keys: every quoted key in the parser's key sets
keys=$(sed -n '/static let clusterKeys/,/static let tlsNodeKeys/p' Sources/MeshQCore/Config/ConfigParser.swift | grep -oE '"[a-z_]+"' | tr -d '"' | sort -u)
n=0; for k in $keys; do n=$((n+1)); grep -qF "\`$k\`" docs/configuration.md || { echo "MISSING key in configuration.md: $k"; miss=1; }
  grep -qE "^#? ?$k\b" etc/meshq/meshq.conf || { echo "MISSING key in meshq.conf: $k"; miss=1; }; done
echo "config keys checked: $n"
# 3. error codes
codes=$(grep -oE 'case [a-z]+ = "[A-Z]+"' Sources/MeshQCore/Protocol/ErrorCode.swift | grep -oE '"[A-Z]+"' | tr -d '"')
n=0; for c in $codes; do n=$((n+1)); grep -qF "| \`$c\` |" docs/protocol.md || { echo "MISSING error code in protocol.md: $c"; miss=1; }; done
echo "error codes checked: $n"
# 4. verbs
verbs=$(cat Sources/MeshQCore/Protocol/LineParser*.swift | grep -oE 'case "[A-Z]+"(, "[A-Z]+")*' | grep -oE '"[A-Z]+"' | tr -d '"' | sort -u)
n=0; for v in $verbs; do n=$((n+1)); grep -qE "\| \`$v( |\`)" docs/protocol.md || { echo "MISSING verb in protocol.md: $v"; miss=1; }; done
echo "verbs checked: $n"
# 5. reply forms (Reply cases rendered words)
for r in OK QUEUED TASK JOB EMPTY HELLO STATUS STATS END PONG HELP BYE ERR; do grep -qF "\`$r" docs/protocol.md || { echo "MISSING reply in protocol.md: $r"; miss=1; }; done
echo "reply forms checked: 13"
# 6. metrics
mets=$(grep -oE '(metric|perQueue)\("meshq_[a-z_]+"' Sources/MeshQNode/NodeMetrics.swift | grep -oE 'meshq_[a-z_]+')
n=0; for m in $mets; do n=$((n+1)); grep -qF "\`$m\`" docs/operations.md || { echo "MISSING metric in operations.md: $m"; miss=1; }; done
echo "metrics checked: $n"
# 7. peer message kinds (PeerEnvelope.Kind case names, snake_cased)
kinds=$(sed -n '/private enum Kind: UInt8/,/^    }/p' Sources/MeshQCore/Cluster/PeerEnvelope.swift | grep -oE '\b[a-z][A-Za-z]+\b' | grep -vE '^(case|private|enum|UInt8|Kind)$' | sed -E 's/([A-Z])/_\L\1/g' | sort -u)
n=0; for k in $kinds; do n=$((n+1)); grep -qF "| \`$k\` |" docs/protocol.md || { echo "MISSING peer kind in protocol.md: $k"; miss=1; }; done
echo "peer kinds checked: $n"
# 8. STATUS keys, required and extra
skeys=$( { grep -oE '[a-z_]+=\\\(' Sources/MeshQCore/Node/StatusReport.swift | grep -oE '^[a-z_]+'; sed -n '/extra: \[("tasks"/,/extra)/p' Sources/MeshQCore/Node/NodeCore.swift | grep -oE '\("[a-z_]+"' | tr -d '("'; } | sort -u)
n=0; for k in $skeys; do n=$((n+1)); grep -qF "| \`$k\` |" docs/protocol.md || { echo "MISSING STATUS key in protocol.md: $k"; miss=1; }; done
echo "STATUS keys checked: $n"
# 9. log levels
for l in debug info notice warn error; do grep -qF "\`$l\`" docs/operations.md || { echo "MISSING level: $l"; miss=1; }; done
[ $miss = 0 ] && echo "ALL PRESENT" || exit 1
