"""Validates rendered Kubernetes manifests offline, for scripts/test.

Core kinds are checked against the Kubernetes OpenAPI schemas bundled with
kubernetes-validate (strict: unknown fields are errors), at that package's latest Kubernetes
version. KEDA ScaledObjects and Strimzi KafkaTopics (custom resources, whose schemas are not
bundled) are checked for the fields Herald relies on, as their CRDs define them.

usage: k8s_validate.py < rendered.yaml     (prints one line per resource; exit 1 on errors)
"""

import sys

import kubernetes_validate
import yaml

VERSION = kubernetes_validate.latest_version()


def check_custom(doc):
    kind, spec = doc["kind"], doc.get("spec", {})
    if kind == "ScaledObject":
        target = spec["scaleTargetRef"]
        assert target["kind"] in ("Deployment", "StatefulSet") and target["name"], "scaleTargetRef"
        assert isinstance(spec.get("minReplicaCount", 0), int)
        assert isinstance(spec.get("maxReplicaCount", 100), int)
        for trigger in spec["triggers"]:
            assert trigger["type"] == "kafka", "a kafka trigger"
            for key in ("bootstrapServers", "consumerGroup", "topic", "lagThreshold"):
                assert isinstance(trigger["metadata"][key], str), f"trigger metadata {key} is a string"
        return
    if kind == "KafkaTopic":
        assert doc["metadata"]["labels"]["strimzi.io/cluster"], "strimzi.io/cluster label"
        assert isinstance(spec["partitions"], int) and spec["partitions"] > 0, "partitions"
        assert isinstance(spec["replicas"], int) and spec["replicas"] > 0, "replicas"
        assert isinstance(spec.get("config", {}), dict), "config"
        return
    raise AssertionError(f"no check for {doc['apiVersion']} {kind}")


def main():
    errors = 0
    documents = [d for d in yaml.safe_load_all(sys.stdin) if d]
    for doc in documents:
        name = f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
        try:
            try:
                kubernetes_validate.validate(doc, VERSION, strict=True)
                how = f"Kubernetes {VERSION} schema"
            except kubernetes_validate.SchemaNotFoundError:
                check_custom(doc)
                how = "custom resource fields"
            print(f"ok\t{name}\t({how})")
        except (kubernetes_validate.ValidationError, AssertionError, KeyError, TypeError) as e:
            errors += 1
            print(f"invalid\t{name}\t{e}")
    print(f"{len(documents)} resources, {errors} invalid")
    sys.exit(1 if errors or not documents else 0)


if __name__ == "__main__":
    main()
