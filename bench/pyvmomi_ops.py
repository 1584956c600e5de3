#!/usr/bin/python3
"""The reference client for bench/pyvmomi.ts: the same operations as our driver, done
the way a pyvmomi program usually does them, against the same simulator in the same
run. Round trips are read from the simulator's own per-method statistics (its control
endpoint), so both clients are counted by the same meter.

    /usr/bin/python3 bench/pyvmomi_ops.py '{"op": "login", "rounds": 5, ...}'

Prints one JSON line: {"ms": [...], "trips": [...]} (one entry per round); the "image"
op prints {"ops": {name: {"trips": [...], "methods": [{method: calls}, ...], "uploads": [...]}}}.
"""
import datetime
import http.client
import json
import os
import ssl
import sys
import time
import urllib.parse
import urllib.request
import uuid

from pyVim.connect import Disconnect, SmartConnect
from pyVmomi import vim, vmodl


def control(url, method):
    req = urllib.request.Request(url + "/stats", method=method)
    with urllib.request.urlopen(req) as res:
        return json.load(res)


def stats(job):
    return control(job["controlUrl"], "GET")


def soap_requests(job):
    return stats(job)["soapRequests"]


def ssl_context(job):
    return ssl.create_default_context(cafile=job["caFile"]) if job.get("caFile") else ssl._create_unverified_context()


def connect(job):
    return SmartConnect(host=job["host"], port=job["port"], user=job["username"], pwd=job["password"], sslContext=ssl_context(job))


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


# --- Image: a sparse VMDK cached the way Nova's VMware driver caches it --------------
# Nova (nova/virt/vmwareapi: vmops, ds_util, vm_util, imagecache; read at openstack/nova
# 00a0304, oslo.vmware 2cb072e) through oslo.vmware, redone with pyvmomi call for call. Each operation starts with empty caches, as a
# fresh nova-compute would, and as each `pulumi up` starts a fresh provider process;
# with "warm", as a long-running one: it keeps the cluster, the datacenter mapping and
# the datastore browsers for its lifetime.
# Left out: Nova first asks for an ESX host's service ticket to PUT to the host
# directly (datastore summary, its hosts, their runtime, the host's name,
# AcquireGenericServiceTicket: 5 more calls on a real vCenter); the simulator's hosts
# cannot be reached by name, so the PUT goes to vCenter's /folder with the session
# cookie, Nova's fallback. Nova's in-use check reads its own database (no call).
PC = vmodl.query.PropertyCollector
TS_PREFIX = "ts-"
TS_FORMAT = "%Y-%m-%d-%H-%M-%S"
AGE_SECONDS = 86400  # remove_unused_original_minimum_age_seconds


def utcnow():
    return datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)


class Nova:
    def __init__(self, job, si, content):
        self.job, self.si, self.content = job, si, content
        self.pc = content.propertyCollector
        self.base = job["cachePrefix"] + "_base"
        self.cluster_ref = None
        self.dc_by_ds = {}
        self.browsers = {}

    def warm_up(self):
        """What a nova-compute that has run for a while knows: the cluster, the
        datastores' datacenter, both maps of browsers."""
        ds_name, ds = self.datastores(self.cluster())[0]
        self.dc_info(ds)
        self.browser(ds, "vmops")
        self.browser(ds, "imagecache")

    # oslo.vmware's property-collector reads: RetrievePropertiesEx, continued while a
    # token comes back, cancelled when the caller stops early.
    def retrieve(self, specs, max_objects):
        res = self.pc.RetrievePropertiesEx(specSet=specs, options=PC.RetrieveOptions(maxObjects=max_objects))
        objects = []
        while res:
            objects.extend(res.objects)
            res = self.pc.ContinueRetrievePropertiesEx(token=res.token) if res.token else None
        return objects

    def object_properties(self, obj, paths):
        spec = PC.FilterSpec(objectSet=[PC.ObjectSpec(obj=obj, skip=False)], propSet=[PC.PropertySpec(type=type(obj), pathSet=paths)])
        res = self.pc.RetrievePropertiesEx(specSet=[spec], options=PC.RetrieveOptions(maxObjects=1))
        if res.token:
            self.pc.CancelRetrievePropertiesEx(token=res.token)
        return {p.name: p.val for p in res.objects[0].propSet} if res.objects else {}

    def object_property(self, obj, prop):
        return self.object_properties(obj, [prop]).get(prop)

    def objects_of_type(self, kind, props):
        """Every object of a kind under the root folder: one traversal that walks folders,
        datacenters, compute resources, hosts and resource pools (oslo's recursive spec)."""
        def sel(name):
            return PC.SelectionSpec(name=name)

        def trav(name, kind_, path, select=()):
            return PC.TraversalSpec(name=name, type=kind_, path=path, skip=False, selectSet=[sel(s) for s in select])

        specs = [
            trav("visitFolders", vim.Folder, "childEntity", ["visitFolders", "dc_to_hf", "dc_to_vmf", "dc_to_netf", "dc_to_df", "cr_to_h", "cr_to_rp", "ccr_to_h", "ccr_to_rp", "h_to_vm", "rp_to_rp", "rp_to_vm"]),
            trav("dc_to_hf", vim.Datacenter, "hostFolder", ["visitFolders"]),
            trav("dc_to_vmf", vim.Datacenter, "vmFolder", ["visitFolders"]),
            trav("dc_to_netf", vim.Datacenter, "networkFolder", ["visitFolders"]),
            trav("dc_to_df", vim.Datacenter, "datastoreFolder", ["visitFolders"]),
            trav("cr_to_h", vim.ComputeResource, "host"),
            trav("cr_to_rp", vim.ComputeResource, "resourcePool", ["rp_to_rp", "rp_to_vm"]),
            trav("ccr_to_h", vim.ClusterComputeResource, "host"),
            trav("ccr_to_rp", vim.ClusterComputeResource, "resourcePool", ["rp_to_rp", "rp_to_vm"]),
            trav("h_to_vm", vim.HostSystem, "vm", ["visitFolders"]),
            trav("rp_to_rp", vim.ResourcePool, "resourcePool", ["rp_to_rp", "rp_to_vm"]),
            trav("rp_to_vm", vim.ResourcePool, "vm", ["visitFolders"]),
        ]
        spec = PC.FilterSpec(objectSet=[PC.ObjectSpec(obj=self.content.rootFolder, skip=False, selectSet=specs)], propSet=[PC.PropertySpec(type=kind, pathSet=props)])
        return self.retrieve([spec], 100)

    def wait(self, task):
        """oslo.vmware's wait: a looping call that reads the task's info at once, then
        every task_poll_interval (0.5 s) until it is done (pyVim's WaitForTask, a filter
        and WaitForUpdates, cannot run here: it reads the whole TaskInfo, see below)."""
        # oslo reads `info` whole; here its parts, in the same one call: the simulator
        # names the VirtualDiskManager or FileManager as the TaskInfo's entity, which
        # pyvmomi refuses (a ManagedEntity is due).
        while True:
            info = self.object_properties(task, ["info.state", "info.error", "info.result"])
            if info["info.state"] == vim.TaskInfo.State.success:
                return info.get("info.result")
            if info["info.state"] == vim.TaskInfo.State.error:
                raise info["info.error"]
            time.sleep(0.5)

    # vm_util / ds_util look-ups
    def cluster(self):
        # found once, when the driver starts
        if self.cluster_ref is None:
            self.cluster_ref = next(o.obj for o in self.objects_of_type(vim.ClusterComputeResource, ["name"]) if o.propSet and o.propSet[0].val == self.job["cluster"])
        return self.cluster_ref

    def datastores(self, cluster):
        """The cluster's usable datastores, most free space first (ds_util.get_datastore)."""
        refs = self.object_property(cluster, "datastore")
        spec = PC.FilterSpec(
            objectSet=[PC.ObjectSpec(obj=ds, skip=False) for ds in refs],
            propSet=[PC.PropertySpec(type=vim.Datastore, pathSet=["summary.type", "summary.name", "summary.capacity", "summary.freeSpace", "summary.accessible", "summary.maintenanceMode"])],
        )
        usable = []
        for o in self.retrieve([spec], 100):
            p = {x.name: x.val for x in o.propSet}
            if p.get("summary.accessible") and p.get("summary.maintenanceMode", "normal") == "normal" and p["summary.type"] in ("VMFS", "NFS", "NFS41"):
                usable.append((p["summary.freeSpace"], p["summary.name"], o.obj))
        return [(name, ref) for _, name, ref in sorted(usable, key=lambda u: -u[0])]

    def dc_info(self, ds):
        if ds._moId not in self.dc_by_ds:
            for o in self.objects_of_type(vim.Datacenter, ["name", "datastore", "vmFolder"]):
                p = {x.name: x.val for x in o.propSet}
                for d in p.get("datastore", []):
                    self.dc_by_ds[d._moId] = o.obj
        return self.dc_by_ds[ds._moId]

    def browser(self, ds, cache):
        # vmops and imagecache each keep their own map of browsers.
        key = (cache, ds._moId)
        if key not in self.browsers:
            self.browsers[key] = self.object_property(ds, "browser")
        return self.browsers[key]

    def inventory_path(self, entity):
        """oslo.vmware get_inventory_path: the entity and its parents in one traversal."""
        parent = PC.TraversalSpec(name="ParentTraversalSpec", type=vim.ManagedEntity, path="parent", skip=False, selectSet=[PC.SelectionSpec(name="ParentTraversalSpec")])
        spec = PC.FilterSpec(objectSet=[PC.ObjectSpec(obj=entity, skip=False, selectSet=[parent])], propSet=[PC.PropertySpec(type=vim.ManagedEntity, pathSet=["name", "parent"])])
        names = [next(x.val for x in o.propSet if x.name == "name") for o in self.retrieve([spec], 100)]
        # names: the entity, its parent, ..., the root folder (left out of the path)
        return "/".join(list(reversed(names[1:-1])) + names[:1])

    # ds_util file operations (each task waited for as oslo.vmware does)
    def search(self, browser, path, pattern=None):
        spec = None
        if pattern:
            spec = vim.host.DatastoreBrowser.SearchSpec(matchPattern=[pattern], details=vim.host.DatastoreBrowser.FileInfo.Details(fileOwner=False, fileSize=True, fileType=False, modification=False))
        try:
            return self.wait(browser.SearchDatastore_Task(datastorePath=path, searchSpec=spec))
        except vim.fault.FileNotFound:
            return None

    def file_exists(self, browser, folder, name):
        res = self.search(browser, folder, name)
        return bool(res and res.file and res.file[0].path == name)

    def sub_folders(self, browser, folder):
        res = self.search(browser, folder)
        return {f.path for f in res.file} if res and res.file else set()

    def mkdir(self, path, dc):
        try:
            self.content.fileManager.MakeDirectory(name=path, datacenter=dc, createParentDirectories=True)
        except vim.fault.FileAlreadyExists:
            pass

    def file_delete(self, path, dc):
        try:
            self.wait(self.content.fileManager.DeleteDatastoreFile_Task(name=path, datacenter=dc))
        except vim.fault.FileNotFound:
            pass

    def upload(self, dc, ds_name, rel_path, source):
        """The FileWriteHandle PUT: /folder/<path>?dcPath=&dsName= with the session cookie."""
        query = urllib.parse.urlencode({"dcPath": self.inventory_path(dc), "dsName": ds_name})
        cookie = self.si._stub.cookie.split(";")[0]
        conn = http.client.HTTPSConnection(self.job["host"], self.job["port"], context=ssl_context(self.job))
        try:
            with open(source, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                conn.request("PUT", "/folder/%s?%s" % (urllib.parse.quote(rel_path), query), body=f, headers={"Cookie": cookie, "Content-Length": str(size), "Content-Type": "application/octet-stream"})
                res = conn.getresponse()
                res.read()
                if res.status not in (200, 201):
                    raise SystemExit("upload answered %d" % res.status)
        finally:
            conn.close()

    # The operations
    def spawn_image(self, image_id):
        """What spawn does for the image: pick the datastore, enlist the image with the
        cache manager, then _fetch_image_if_missing (a sparse image: staged, uploaded,
        copied to a flat disk, moved into the cache) and the flat file's size."""
        cluster = self.cluster()
        ds_name, ds = self.datastores(cluster)[0]
        dc = self.dc_info(ds)
        folder = "[%s] %s/%s" % (ds_name, self.base, image_id)
        # imagecache.enlist_image: drop an aging marker if there is one
        for ts in self.sub_folders(self.browser(ds, "imagecache"), folder):
            if ts.startswith(TS_PREFIX):
                self.file_delete("%s/%s" % (folder, ts), dc)
        self.mkdir("[%s] %s" % (ds_name, self.base), dc)  # check_cache_folder
        browser = self.browser(ds, "vmops")
        if not self.file_exists(browser, folder, image_id + ".vmdk"):
            tmp = "vmware_temp/%s" % uuid.uuid4()
            staged = "%s/%s/tmp-sparse.vmdk" % (tmp, image_id)
            self.mkdir("[%s] %s/%s" % (ds_name, tmp, image_id), dc)
            self.upload(dc, ds_name, staged, self.job["source"])
            vdm = self.content.virtualDiskManager
            self.wait(vdm.CopyVirtualDisk_Task(sourceName="[%s] %s" % (ds_name, staged), sourceDatacenter=dc, destName="[%s] %s/%s/%s.vmdk" % (ds_name, tmp, image_id, image_id)))
            self.file_delete("[%s] %s" % (ds_name, staged), dc)
            try:
                self.wait(self.content.fileManager.MoveDatastoreFile_Task(sourceName="[%s] %s/%s" % (ds_name, tmp, image_id), sourceDatacenter=dc, destinationName=folder, destinationDatacenter=dc))
            except vim.fault.FileAlreadyExists:
                pass
            self.file_delete("[%s] %s" % (ds_name, tmp), dc)
        res = self.search(browser, folder, image_id + "-flat.vmdk")  # _update_image_size
        if not res or not res.file or not res.file[0].fileSize:
            raise SystemExit("no flat disk in %s" % folder)
        return ds_name, ds

    def cached(self, ds_name, ds, image_id):
        """Is the cached image still there: the browser, the search, its task's info."""
        if not self.file_exists(self.browser(ds, "vmops"), "[%s] %s/%s" % (ds_name, self.base, image_id), image_id + ".vmdk"):
            raise SystemExit("image %s is not cached" % image_id)

    def age_cache(self, now, ours):
        """One pass of the image cache manager over the cluster's datastores: an unused
        image gets a ts-<time> folder, or is deleted when that folder is old enough.
        Only images named `ours` are considered (other runs' stay untouched)."""
        cluster = self.cluster()
        for ds_name, ds in self.datastores(cluster):
            dc = self.dc_info(ds)
            browser = self.browser(ds, "imagecache")
            root = "[%s] %s" % (ds_name, self.base)
            for image in sorted(self.sub_folders(browser, root)):
                if not image.startswith(ours):
                    continue
                path = "%s/%s" % (root, image)
                ts = next((f for f in self.sub_folders(browser, path) if f.startswith(TS_PREFIX)), None)
                if ts is None:
                    self.mkdir("%s/%s%s" % (path, TS_PREFIX, now.strftime(TS_FORMAT)), dc)
                elif (now - datetime.datetime.strptime(ts[len(TS_PREFIX):], TS_FORMAT)).total_seconds() > AGE_SECONDS:
                    self.file_delete(path, dc)


def image_ops(job, si):
    """Per round: spawn with the image missing (create), spawn with it cached (up with
    nothing to change), the cache-hit test alone (refresh), and the two aging passes a
    day apart that delete it (mark, delete). Each counted alone, by method: each in a
    fresh Nova (empty caches), or with "warm" in one Nova whose caches are full."""
    content = si.RetrieveContent()
    names = ("create", "cached", "refresh", "mark", "delete")
    out = {n: {"trips": [], "methods": [], "uploads": []} for n in names}
    for i in range(job["rounds"]):
        image_id = "%s-%s" % (job["imagePrefix"], uuid.uuid4())
        if job.get("warm"):
            # one long-running Nova, its caches filled outside the counts
            warm = Nova(job, si, content)
            warm.warm_up()
            nova = lambda: warm
        else:
            nova = lambda: Nova(job, si, content)
        found = {}
        steps = {
            "create": lambda: found.update(at=nova().spawn_image(image_id)),
            "cached": lambda: nova().spawn_image(image_id),
            "refresh": lambda: nova().cached(*found["at"], image_id),
            # the pass that finds it unused (dated two days back, so the next deletes it)
            "mark": lambda: nova().age_cache(utcnow() - datetime.timedelta(days=2), image_id),
            "delete": lambda: nova().age_cache(utcnow(), image_id),
        }
        for n in names:
            before = stats(job)
            steps[n]()
            after = stats(job)
            methods = {m: c - before["methods"].get(m, 0) for m, c in after["methods"].items() if c - before["methods"].get(m, 0)}
            out[n]["methods"].append(methods)
            out[n]["trips"].append(after["soapRequests"] - before["soapRequests"])
            out[n]["uploads"].append(after["uploads"] - before["uploads"])
            # The counts stand only if the work was done (checked outside them).
            if n == "create" and after["uploadBytes"] - before["uploadBytes"] != os.path.getsize(job["source"]):
                raise SystemExit("create uploaded %d bytes" % (after["uploadBytes"] - before["uploadBytes"]))
        ds_name, ds = found["at"]
        if nova().sub_folders(nova().browser(ds, "vmops"), "[%s] %s" % (ds_name, job["cachePrefix"] + "_base")) & {image_id}:
            raise SystemExit("image %s is still cached after its delete" % image_id)
    return out


def main():
    job = json.loads(sys.argv[1])
    si = None if job["op"] == "login" else connect(job)
    if job["op"] == "image":
        try:
            print(json.dumps({"ops": image_ops(job, si)}))
        finally:
            Disconnect(si)
        return
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
