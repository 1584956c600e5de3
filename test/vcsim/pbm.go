package main

// SPBM, vCenter's storage policy service, at /pbm: govmomi's pbm simulator (its
// package's init registers it for a VPX model), with the profiles it ships
// ("vSAN Default Storage Policy", "VVol No Requirements Policy", "VM Encryption
// Policy", "Host-local PMem Default Storage Policy"), and three corrections made
// here, in front of it:
//
//   - Authentication. vCenter's SPBM service is not vpxd: it accepts a call only
//     when the SOAP header names a live vim session (<vcSessionCookie>, the value of
//     the vim session's vmware_soap_session cookie); the HTTP cookie alone gets
//     NotAuthenticated (pyVmomi and rbvmomi set the header for this reason). The
//     simulator reads the HTTP cookie only, so here the header decides: without it,
//     or naming no live session, a call is refused, and with it the simulator sees
//     the header's session as its cookie. PbmRetrieveServiceContent needs none.
//   - Placement. The simulator's PbmCheckRequirements answers every datastore of
//     the inventory, compatible, whatever hubs were asked and whatever the policy;
//     it has no PbmQueryMatchingHub (Nova's call, vCenter 5.5 on). Here both are
//     answered for the hubs asked (all datastores when none), and a datastore the
//     control endpoint marks incompatible with a policy is left out of the matching
//     hubs / carries an error in its compatibility result, as vCenter does for a
//     datastore whose capabilities do not satisfy the policy's rules. What stays
//     unshown: real rule matching (vSAN / VVol / tag capabilities), datastore
//     clusters as hubs, and a policy id that names no profile (vCenter faults).
//   - Schema order. vCenter's deserializer checks PBM requests as it does vim25
//     ones (order.go), here with the pbm types.
//
// Control: POST /pbm/incompatible {"policyId": "...", "datastores": ["name or moref value"]}
// adds marks, GET lists them, DELETE clears them.

import (
	"encoding/json"
	"encoding/xml"
	"net/http"
	"reflect"
	"sort"
	"strings"
	"sync"

	_ "github.com/vmware/govmomi/pbm/simulator"
	pbmtypes "github.com/vmware/govmomi/pbm/types"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/types"
)

const pbmPath = "/pbm"

// pbmTypeFunc resolves a PBM element type (registered as "pbm:<Name>") or a vim25 one.
func pbmTypeFunc(name string) (reflect.Type, bool) {
	if t, ok := types.TypeFunc()("pbm:" + strings.TrimPrefix(name, "pbm:")); ok {
		return t, true
	}
	return types.TypeFunc()(name)
}

// pbmMarks: policy id -> datastores (names or moref values) incompatible with it.
var pbmMarks = struct {
	sync.Mutex
	incompatible map[string]map[string]bool
}{incompatible: map[string]map[string]bool{}}

func pbmIncompatible(policyID string, ds types.ManagedObjectReference, name string) bool {
	pbmMarks.Lock()
	defer pbmMarks.Unlock()
	m := pbmMarks.incompatible[policyID]
	return m[ds.Value] || m[name]
}

func (in *injector) servePBM(w http.ResponseWriter, r *http.Request) {
	_, body, ok := in.readCall(r)
	if !ok {
		return
	}

	if in.schemaStrict {
		if err := checkSchemaOrderWith(body, pbmTypeFunc); err != nil {
			writeFault(w, &types.InvalidRequest{}, err.Error())
			return
		}
	}
	method, err := simulator.UnmarshalBody(pbmTypeFunc, body)
	if err != nil {
		in.inner.ServeHTTP(w, r) // the simulator's own fault for a request it cannot read
		return
	}
	key := method.Header.Cookie
	if method.Name != "PbmRetrieveServiceContent" && !sessionLive(key) {
		writeFault(w, &types.NotAuthenticated{NoPermission: types.NoPermission{Object: method.This, PrivilegeId: "System.View"}},
			"The session is not authenticated: the SOAP header carries no vcSessionCookie of a live vCenter session.")
		return
	}
	r.Header.Del("Cookie")
	if key != "" {
		r.AddCookie(&http.Cookie{Name: sessionCookie, Value: key})
	}

	switch req := method.Body.(type) {
	case *pbmtypes.PbmQueryMatchingHub:
		var out strings.Builder
		for _, h := range pbmHubs(req.HubsToSearch) {
			if !pbmIncompatible(req.Profile.UniqueId, h.ref, h.name) {
				out.WriteString("<returnval>" + pbmHubXML(h.ref) + "</returnval>")
			}
		}
		writePBMResponse(w, method.Name, out.String())
	case *pbmtypes.PbmCheckRequirements:
		var policies []string
		for _, p := range req.PlacementSubjectRequirement {
			if c, ok := p.(*pbmtypes.PbmPlacementCapabilityProfileRequirement); ok {
				policies = append(policies, c.ProfileId.UniqueId)
			}
		}
		var out strings.Builder
		for _, h := range pbmHubs(req.HubsToSearch) {
			out.WriteString("<returnval><hub>" + pbmHubXML(h.ref) + "</hub>")
			for _, p := range policies {
				if pbmIncompatible(p, h.ref, h.name) {
					out.WriteString(`<error><fault xsi:type="PbmFault"></fault><localizedMessage>`)
					_ = xml.EscapeText(&out, []byte("Datastore "+h.name+" does not satisfy the requirements of storage policy "+p))
					out.WriteString("</localizedMessage></error>")
				}
			}
			out.WriteString("</returnval>")
		}
		writePBMResponse(w, method.Name, out.String())
	default:
		in.inner.ServeHTTP(w, r)
	}
}

type pbmHub struct {
	ref  types.ManagedObjectReference
	name string
}

// pbmHubs: the datastores asked for (all the inventory's when none), in the order
// asked; a hub that is not a datastore of the inventory is not one that matches.
func pbmHubs(asked []pbmtypes.PbmPlacementHub) []pbmHub {
	all := map[string]string{}
	var order []string
	for _, e := range simulator.Map.All("Datastore") {
		ref := e.Reference()
		all[ref.Value] = e.Entity().Name
		order = append(order, ref.Value)
	}
	if len(asked) > 0 {
		order = order[:0]
		for _, h := range asked {
			if _, ok := all[h.HubId]; ok && h.HubType == "Datastore" {
				order = append(order, h.HubId)
			}
		}
	} else {
		sort.Strings(order)
	}
	hubs := make([]pbmHub, 0, len(order))
	for _, id := range order {
		hubs = append(hubs, pbmHub{ref: types.ManagedObjectReference{Type: "Datastore", Value: id}, name: all[id]})
	}
	return hubs
}

func pbmHubXML(ref types.ManagedObjectReference) string {
	var b strings.Builder
	b.WriteString("<hubType>Datastore</hubType><hubId>")
	_ = xml.EscapeText(&b, []byte(ref.Value))
	b.WriteString("</hubId>")
	return b.String()
}

func writePBMResponse(w http.ResponseWriter, method, inner string) {
	w.Header().Set("Content-Type", "text/xml; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write([]byte(`<?xml version="1.0" encoding="UTF-8"?>` +
		`<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">` +
		`<soapenv:Body><` + method + `Response xmlns="urn:pbm">` + inner + `</` + method + `Response></soapenv:Body></soapenv:Envelope>`))
}

// pbmControl serves /pbm/incompatible on the control endpoint.
func pbmControl(w http.ResponseWriter, r *http.Request) {
	reply := func(status int, v interface{}) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(v)
	}
	pbmMarks.Lock()
	defer pbmMarks.Unlock()
	switch r.Method {
	case http.MethodPost:
		var spec struct {
			PolicyID   string   `json:"policyId"`
			Datastores []string `json:"datastores"`
		}
		if err := json.NewDecoder(r.Body).Decode(&spec); err != nil || spec.PolicyID == "" {
			reply(http.StatusBadRequest, map[string]string{"error": `want {"policyId": "...", "datastores": ["name or moref value", ...]}`})
			return
		}
		if pbmMarks.incompatible[spec.PolicyID] == nil {
			pbmMarks.incompatible[spec.PolicyID] = map[string]bool{}
		}
		for _, d := range spec.Datastores {
			pbmMarks.incompatible[spec.PolicyID][d] = true
		}
	case http.MethodDelete:
		pbmMarks.incompatible = map[string]map[string]bool{}
	case http.MethodGet:
	default:
		w.WriteHeader(http.StatusMethodNotAllowed)
		return
	}
	out := map[string][]string{}
	for p, m := range pbmMarks.incompatible {
		for d := range m {
			out[p] = append(out[p], d)
		}
		sort.Strings(out[p])
	}
	reply(http.StatusOK, out)
}
