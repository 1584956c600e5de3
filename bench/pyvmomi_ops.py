#!/usr/bin/python3
"""The reference client for bench/pyvmomi.ts: the same operations as our driver, done
the way a pyvmomi program usually does them, against the same simulator in the same
run. Round trips are read from the simulator's own per-method statistics (its control
endpoint), so both clients are counted by the same meter.

    /usr/bin/python3 bench/pyvmomi_ops.py '{"op": "login", "rounds": 5, ...}'

Prints one JSON line: {"ms": [...], "trips": [...]} (one entry per round).
"""
import json
import ssl
import sys
import time
import urllib.request

from pyVim.connect import Disconnect, SmartConnect
from pyVmomi import vim, vmodl


def control(url, method):
    req = urllib.request.Request(url + "/stats", method=method)
    with urllib.request.urlopen(req) as res:
        return json.load(res)


def soap_requests(job):
    return control(job["controlUrl"], "GET")["soapRequests"]


def connect(job):
    ctx = ssl.create_default_context(cafile=job["caFile"]) if job.get("caFile") else ssl._create_unverified_context()
    return SmartConnect(host=job["host"], port=job["port"], user=job["username"], pwd=job["password"], sslContext=ctx)


def login(job, si):
    s = connect(job)
    Disconnect(s)


def list_vms(job, si):
    """Name and power state of every VM, paged by maxObjects like our driver."""
    content = si.RetrieveContent()
    view = content.viewManager.CreateContainerView(content.rootFolder, [vim.VirtualMachine], True)
    try:
        spec = vmodl.query.PropertyCollector.FilterSpec(
            objectSet=[
                vmodl.query.PropertyCollector.ObjectSpec(
                    obj=view,
                    skip=True,
                    selectSet=[vmodl.query.PropertyCollector.TraversalSpec(name="v", type=vim.view.ContainerView, path="view", skip=False)],
                )
            ],
            propSet=[vmodl.query.PropertyCollector.PropertySpec(type=vim.VirtualMachine, pathSet=["name", "runtime.powerState"])],
        )
        pc = content.propertyCollector
        res = pc.RetrievePropertiesEx([spec], vmodl.query.PropertyCollector.RetrieveOptions(maxObjects=job["maxObjects"]))
        n = len(res.objects)
        while res.token:
            res = pc.ContinuePropertiesEx(res.token) if hasattr(pc, "ContinuePropertiesEx") else pc.ContinueRetrievePropertiesEx(res.token)
            n += len(res.objects)
        if n != job["expectVms"]:
            raise SystemExit("listed %d VMs" % n)
    finally:
        view.Destroy()


def port_group(job, si, i):
    """A standard port group on every host of the cluster, then its Network: as a
    pyvmomi script would write it (find the cluster through a view, then each host's
    network system)."""
    content = si.RetrieveContent()
    view = content.viewManager.CreateContainerView(content.rootFolder, [vim.ClusterComputeResource], True)
    try:
        cluster = next(c for c in view.view if c.name == job["cluster"])
    finally:
        view.Destroy()
    name = "%s-%d" % (job["name"], i)
    for host in cluster.host:
        spec = vim.host.PortGroup.Specification(name=name, vlanId=job["vlanId"], vswitchName="vSwitch0", policy=vim.host.NetworkPolicy())
        host.configManager.networkSystem.AddPortGroup(spec)
    network = next(n for n in cluster.host[0].network if n.name == name)
    return network, cluster, name


def remove_port_group(cluster, name):
    for host in cluster.host:
        host.configManager.networkSystem.RemovePortGroup(name)


def main():
    job = json.loads(sys.argv[1])
    si = None if job["op"] == "login" else connect(job)
    ms, trips = [], []
    try:
        for i in range(job["rounds"]):
            before = soap_requests(job)
            t0 = time.perf_counter()
            made = None
            if job["op"] == "login":
                login(job, si)
            elif job["op"] == "listVms":
                list_vms(job, si)
            elif job["op"] == "portGroup":
                made = port_group(job, si, i)
            ms.append(round((time.perf_counter() - t0) * 1000, 1))
            trips.append(soap_requests(job) - before)
            if made:
                remove_port_group(made[1], made[2])
    finally:
        if si:
            Disconnect(si)
    print(json.dumps({"ms": ms, "trips": trips}))


if __name__ == "__main__":
    main()
