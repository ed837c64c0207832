"""The cluster-scale workload, one definition for run.py (the real apiserver) and memory.py (the
stand-in): kwok nodes of 32 CPUs / 256 GiB / `gpus` GPUs, queues that split the cluster evenly,
and TrainingJobs of 1-8 one-GPU workers spread over the queues by a seeded generator."""
import json
import random


def node_object(i, gpus, ready_condition=False):
    """kwok node i (name kwok-NNNN). The stand-in has no kwok to set Ready: ready_condition."""
    status = {"allocatable": {"cpu": "32", "memory": "256Gi", "pods": "110", "nvidia.com/gpu": str(gpus)},
              "capacity": {"cpu": "32", "memory": "256Gi", "pods": "110", "nvidia.com/gpu": str(gpus)}}
    if ready_condition:
        status["conditions"] = [{"type": "Ready", "status": "True"}]
    name = f"kwok-{i:04d}"
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "annotations": {"kwok.x-k8s.io/node": "fake"},
                         "labels": {"type": "kwok", "kubernetes.io/hostname": name}},
            "status": status}


def queue_objects(nodes, gpus, queues):
    """(Namespace, Queue) per queue qNN, each guaranteed an equal share of the cluster."""
    gq = nodes * gpus // queues
    cq, mq = nodes * 32 // queues, nodes * 256 // queues
    out = []
    for q in range(queues):
        name = f"q{q:02d}"
        out.append(({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}},
                    {"apiVersion": "tandem.dev/v1alpha1", "kind": "Queue", "metadata": {"name": name},
                     "spec": {"weight": 1, "guaranteed": {"nvidia.com/gpu": gq, "cpu": str(cq), "memory": f"{mq}Gi"},
                              "namespaces": [name]}}))
    return out


def job_mix(seed, jobs, queues):
    """[(namespace, name, workers)]: `jobs` jobs, each in a random queue, of 1-8 workers."""
    rng = random.Random(seed)
    out = []
    for i in range(jobs):
        q = rng.randrange(queues)
        out.append((f"q{q:02d}", f"job-{i:05d}", rng.randint(1, 8)))
    return out


_TEMPLATE = {"apiVersion": "tandem.dev/v1alpha1", "kind": "TrainingJob", "spec": {
    "image": "tandem/tandem:0.1.0",
    "trainer": {"resources": {"requests": {"cpu": "1", "memory": "4Gi", "nvidia.com/gpu": 1}}},
    "pserver": {"resources": {"requests": {"cpu": "500m", "memory": "1Gi"}}},
    "passes": 1,
    "model": {"inputs": [{"name": "image", "source": "features", "shape": [1, 28, 28]},
                         {"name": "label", "source": "labels"}],
              "layers": [{"name": "fc1", "type": "fc", "input": "image", "size": 10},
                         {"name": "cost", "type": "softmax_cross_entropy", "inputs": ["fc1", "label"]}],
              "cost": "cost"},
    "data": {"train": {"format": "idx"}, "test": {"format": "idx"}, "batchSize": 64}}}


def job_object(namespace, name, workers, last_applied=False):
    """One job of the mix. last_applied: as `kubectl apply` leaves it (the annotation the
    operator drops from its cache)."""
    o = json.loads(json.dumps(_TEMPLATE))
    o["metadata"] = {"name": name, "namespace": namespace}
    o["spec"]["queue"] = namespace
    o["spec"]["workers"] = {"count": workers}
    if last_applied:
        o["metadata"]["annotations"] = {"kubectl.kubernetes.io/last-applied-configuration": json.dumps(o)}
    return o
