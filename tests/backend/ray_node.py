"""A Ray node for the batch tests, on 127.0.0.1 only; runs until its stdin closes.

    python ray_node.py head TEMP_DIR CPUS [GPUS] prints the head's GCS address (stillflow's start_local_ray;
                                                 GPUS are declared to Ray only, none need to exist)
    python ray_node.py join TEMP_DIR CPUS GCS    a second node joining GCS, prints its node id

``ray start`` cannot do the second one: it rewrites ``--node-ip-address 127.0.0.1`` to the
machine's network address for worker nodes (and refuses worker nodes when told not to), so the
node is started the way Ray's own ``ray.cluster_utils.Cluster.add_node`` starts one, whose node
address is used as given. With address 127.0.0.1 its raylet listens on loopback only.
"""
from __future__ import annotations

import sys


def main() -> int:
    """Start the node, print its address or id, wait for stdin to close, stop it."""
    role, temp_dir, cpus = sys.argv[1], sys.argv[2], int(sys.argv[3])
    if role == "head":
        import ray

        from stillflow.batch.ray_connect import start_local_ray

        gpus = int(sys.argv[4]) if len(sys.argv) > 4 else 0
        print(start_local_ray(num_cpus=cpus, num_gpus=gpus, temp_dir=temp_dir, object_store_memory=100 << 20),
              flush=True)
        sys.stdin.read()
        ray.shutdown()
        return 0
    from ray._private.node import Node
    from ray._private.parameter import RayParams

    params = RayParams(node_ip_address="127.0.0.1", gcs_address=sys.argv[4], num_cpus=cpus, num_gpus=0,
                       object_store_memory=100 << 20, min_worker_port=0, max_worker_port=0, node_manager_port=0,
                       include_log_monitor=False, temp_dir=temp_dir)
    node = Node(params, head=False, shutdown_at_exit=False, spawn_reaper=False)
    print(node.node_id, flush=True)
    sys.stdin.read()
    node.kill_all_processes(check_alive=False, allow_graceful=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
