package main

import (
	"bytes"
	"fmt"
	"io/ioutil"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/types"
)

// A VM's allocations as vCenter keeps them after CreateVM_Task and ReconfigVM_Task,
// where the simulator (govmomi 0.24.2) differs in what a later read of the VM shows
// (extraConfig's replace-and-remove rule is vmupdate.go's):
//
//   - cpuAllocation / memoryAllocation: the fields of ResourceAllocationInfo are
//     optional in a spec and a field left out keeps its value (at create: vCenter's
//     defaults, no reservation, unlimited, normal shares). The simulator replaces the
//     whole object with the spec's, so a spec that sets only the limit reads back
//     without reservation or shares.
//   - shares: for a level other than custom, vCenter reports the number of shares the
//     level stands for (SharesLevel in the API reference: for CPU 500 / 1000 / 2000 per
//     virtual CPU, for memory 5 / 10 / 20 per MB of the VM's memory), and keeps it in
//     step with numCPUs and memoryMB. The simulator keeps whatever number the spec sent
//     (0 for a level without a count).
//   - FindByUuid with a datacenter: "If specified, restricts the query to this
//     datacenter" (SearchIndex.FindByUuid in the API reference). The simulator
//     searches every datacenter, so a VM of another one is found.

// vmConfigFidelity wraps the simulator's own handler, so every path that reaches it
// (the fault layer, child disks, delayed tasks, vmupdate.go) keeps allocations alike.
func vmConfigFidelity(inner http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || !strings.HasPrefix(r.URL.Path, "/sdk") {
			inner.ServeHTTP(w, r)
			return
		}
		body, err := ioutil.ReadAll(r.Body)
		if err != nil {
			return
		}
		r.Body = ioutil.NopCloser(bytes.NewReader(body))
		if !bytes.Contains(body, []byte("CreateVM_Task")) && !bytes.Contains(body, []byte("ReconfigVM_Task")) && !bytes.Contains(body, []byte("FindByUuid")) {
			inner.ServeHTTP(w, r)
			return
		}
		var spec *types.VirtualMachineConfigSpec
		switch req := decodeRequest(body).(type) {
		case *types.FindByUuid:
			if req.Datacenter == nil || !req.VmSearch {
				inner.ServeHTTP(w, r)
				return
			}
			found := ""
			if ref := findVmByUuidIn(*req.Datacenter, req.Uuid, req.InstanceUuid != nil && *req.InstanceUuid); ref != nil {
				found = fmt.Sprintf(`<returnval type="%s">%s</returnval>`, ref.Type, ref.Value)
			}
			writeResponse(w, "FindByUuid", found)
			return
		case *types.CreateVM_Task:
			spec = &req.Config
		case *types.ReconfigVM_Task:
			spec = &req.Spec
		default:
			inner.ServeHTTP(w, r)
			return
		}
		call := parseSOAP(body)
		// What a reconfigure leaves alone: the allocations as they were before it.
		var cpuBefore, memBefore *types.ResourceAllocationInfo
		if vm, ok := simulator.Map.Get(call.this).(*simulator.VirtualMachine); ok {
			simulator.Map.WithLock(vm, func() {
				cpuBefore, memBefore = copyAllocation(vm.Config.CpuAllocation), copyAllocation(vm.Config.MemoryAllocation)
			})
		}
		rec := httptest.NewRecorder()
		inner.ServeHTTP(rec, r)
		if task, ok := simulator.Map.Get(returnvalRef(rec.Body.Bytes())).(*simulator.Task); ok && task.Info.State == types.TaskInfoStateSuccess {
			ref := call.this
			if res, ok := task.Info.Result.(types.ManagedObjectReference); ok {
				ref = res
			}
			if vm, ok := simulator.Map.Get(ref).(*simulator.VirtualMachine); ok {
				simulator.Map.WithLock(vm, func() {
					vm.Config.CpuAllocation = keptAllocation(spec.CpuAllocation, cpuBefore)
					vm.Config.MemoryAllocation = keptAllocation(spec.MemoryAllocation, memBefore)
					levelShares(vm.Config.CpuAllocation, 500*int32(vm.Config.Hardware.NumCPU))
					levelShares(vm.Config.MemoryAllocation, 5*vm.Config.Hardware.MemoryMB)
				})
			}
		}
		copyRecorded(w, rec)
	})
}

// findVmByUuidIn is the VM of that BIOS or instance uuid in the datacenter dc.
func findVmByUuidIn(dc types.ManagedObjectReference, uuid string, instance bool) *types.ManagedObjectReference {
	for _, e := range simulator.Map.All("VirtualMachine") {
		vm, ok := e.(*simulator.VirtualMachine)
		if !ok {
			continue
		}
		id := ""
		simulator.Map.WithLock(vm, func() {
			if vm.Config == nil {
				return
			}
			id = vm.Config.Uuid
			if instance {
				id = vm.Config.InstanceUuid
			}
		})
		if id != uuid {
			continue
		}
		if d := entityDatacenter(vm.Self); d != nil && d.Self == dc {
			ref := vm.Self
			return &ref
		}
	}
	return nil
}

// defaultAllocation is vCenter's for a new VM.
func defaultAllocation() *types.ResourceAllocationInfo {
	return &types.ResourceAllocationInfo{Reservation: types.NewInt64(0), ExpandableReservation: types.NewBool(false), Limit: types.NewInt64(-1), Shares: &types.SharesInfo{Level: types.SharesLevelNormal}}
}

func copyAllocation(a *types.ResourceAllocationInfo) *types.ResourceAllocationInfo {
	if a == nil {
		return nil
	}
	c := *a
	if a.Shares != nil {
		s := *a.Shares
		c.Shares = &s
	}
	return &c
}

// keptAllocation: the spec's fields over what there was (vCenter's defaults at create).
func keptAllocation(spec, before *types.ResourceAllocationInfo) *types.ResourceAllocationInfo {
	out := copyAllocation(before)
	if out == nil {
		out = defaultAllocation()
	}
	if spec == nil {
		return out
	}
	if spec.Reservation != nil {
		out.Reservation = spec.Reservation
	}
	if spec.ExpandableReservation != nil {
		out.ExpandableReservation = spec.ExpandableReservation
	}
	if spec.Limit != nil {
		out.Limit = spec.Limit
	}
	if spec.Shares != nil {
		s := *spec.Shares
		out.Shares = &s
	}
	return out
}

// levelShares sets the share count a level stands for; perLow is the low level's count.
func levelShares(a *types.ResourceAllocationInfo, perLow int32) {
	if a == nil || a.Shares == nil {
		return
	}
	switch a.Shares.Level {
	case types.SharesLevelLow:
		a.Shares.Shares = perLow
	case types.SharesLevelNormal:
		a.Shares.Shares = 2 * perLow
	case types.SharesLevelHigh:
		a.Shares.Shares = 4 * perLow
	}
}
