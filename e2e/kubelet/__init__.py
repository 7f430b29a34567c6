"""A stand-in for kubelet's volume manager on a tenant node, for the e2e harness only.

A tenant node is a KubeVirt VM; on the harness its hot-plugged disks are loop devices the KubeVirt simulator
links under the VMI's by-id directory. For one tenant Node this package runs our CSI node plugin on those disks
and does for CSI volumes what kubelet does: register the plugin (CSINode, node ID annotation), report
volumesInUse, wait for VolumeAttachments, stage and publish on kubelet's paths, expand on the node, report the
pod Running, and on deletion unpublish, unstage and delete the pod. Containers are not run. See
docs/e2e-kubelet.md.

    python -m e2e.kubelet --dir DIR --node NODE        # or e2e.kubelet.harness.start(cluster, NODE)
    async with VolumeManager(await settings_for(cluster, tenant, NODE)): ...
"""
