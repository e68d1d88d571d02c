#!/usr/bin/env bash
# Fetch Apache Kafka (broker, storage tool, producer performance tool and a log4j2 backend) as jars from Maven
# Central into DEST/libs, for `java -cp 'DEST/libs/*' kafka.Kafka server.properties`.
#
# Usage: KAFKA_VERSION=4.1.1 deploy/local/fetch-kafka.sh DEST
# Idempotent: a stamp file records the version whose jars DEST/libs holds; when it matches, nothing runs.
set -euo pipefail

dest="${1:?usage: fetch-kafka.sh DEST}"
version="${KAFKA_VERSION:-4.1.1}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
stamp="$dest/libs/.tapwire-kafka-version"

if [[ -f "$stamp" && "$(cat "$stamp")" == "$version" ]]; then
    exit 0
fi

for tool in mvn java; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "fetch-kafka: '$tool' is required (apt-get install maven openjdk-17-jre-headless)" >&2
        exit 1
    fi
done

# Copy into a fresh sibling directory and swap it in, so an interrupted fetch never leaves a half-filled
# DEST/libs behind a stale stamp.
mkdir -p "$dest"
staging="$(mktemp -d "$dest/.libs.XXXXXX")"
trap 'rm -rf "$staging"' EXIT

echo "fetch-kafka: Apache Kafka $version from Maven Central into $dest/libs" >&2
mvn -q -B -Dstyle.color=never -f "$here/kafka/pom.xml" dependency:copy-dependencies \
    -Dkafka.version="$version" \
    -DincludeScope=runtime \
    -DoutputDirectory="$staging"

for jar in "kafka_2.13-$version.jar" "kafka-tools-$version.jar" "kafka-server-$version.jar"; do
    if [[ ! -f "$staging/$jar" ]]; then
        echo "fetch-kafka: $jar missing after the copy" >&2
        exit 1
    fi
done

echo "$version" >"$staging/.tapwire-kafka-version"
rm -rf "$dest/libs"
mv "$staging" "$dest/libs"
trap - EXIT
