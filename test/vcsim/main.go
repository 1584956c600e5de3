// Command vcsim is this project's embedded vCenter: govmomi's simulator with the
// topology our tests need, TLS with a certificate written to a file, and a fault
// injection layer steered through a small HTTP control endpoint.
//
// Its first line on stdout is one JSON object (see readyLine) that callers parse;
// everything after that is log output on stderr.
package main

import (
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"io/ioutil"
	"log"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/vmware/govmomi/simulator"
)

type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

type options struct {
	listen      string
	username    string
	password    string
	tls         bool
	caFile      string
	apiVersion  string
	control     string
	faults      listFlag
	stdinExit   bool
	quietServer bool
	dataDir     string
	schemaOrder string
	nfcReadyMs  int
	nfcHostTLS  bool
	nfcHostTP   string
	topo        topology
}

// readyLine is the JSON object printed as the first stdout line once the server answers.
type readyLine struct {
	URL           string     `json:"url"`
	Host          string     `json:"host"`
	Port          int        `json:"port"`
	Username      string     `json:"username"`
	Password      string     `json:"password"`
	TLS           bool       `json:"tls"`
	CAFile        string     `json:"caFile,omitempty"`
	Thumbprint    string     `json:"thumbprint,omitempty"`
	Thumbprint256 string     `json:"thumbprintSha256,omitempty"`
	ControlURL    string     `json:"controlUrl"`
	DataDir       string     `json:"dataDir"`
	APIVersion    string     `json:"apiVersion"`
	PID           int        `json:"pid"`
	StartupMs     int64      `json:"startupMs"`
	Inventory     *inventory `json:"inventory"`
	// With --nfc-host-tls: the NFC host's origin and its certificate's SHA-1.
	NFCHostURL        string `json:"nfcHostUrl,omitempty"`
	NFCHostThumbprint string `json:"nfcHostThumbprint,omitempty"`
}

func parseFlags(args []string) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("vcsim", flag.ContinueOnError)
	fs.StringVar(&o.listen, "listen", "127.0.0.1:0", "address for the vCenter endpoint (port 0 picks a free one); loopback only")
	fs.StringVar(&o.username, "username", "user", "the one accepted login user")
	fs.StringVar(&o.password, "password", "pass", "the one accepted login password")
	fs.BoolVar(&o.tls, "tls", false, "serve HTTPS with a freshly generated self-signed certificate")
	fs.StringVar(&o.caFile, "ca-file", "", "with --tls: where to write the certificate (PEM); default: a temp file removed on exit")
	fs.StringVar(&o.apiVersion, "api-version", "", "report this vCenter version (e.g. 5.1.0) instead of the simulator's 6.5.0")
	fs.StringVar(&o.control, "control", "127.0.0.1:0", "address of the fault-injection control endpoint (plain HTTP)")
	fs.Var(&o.faults, "fault", "a fault rule as JSON, installed at start (repeatable); see README")
	fs.BoolVar(&o.stdinExit, "exit-on-stdin-eof", false, "exit when stdin closes (so a parent's death stops the simulator)")
	fs.BoolVar(&o.quietServer, "quiet", false, "silence the simulator's own request log")
	fs.StringVar(&o.dataDir, "data-dir", defaultDataDir(), "where datastore folders are made (default: /dev/shm when writable: VM files on this disk cost 8x the start-up time)")

	fs.StringVar(&o.schemaOrder, "schema-order", "strict", "strict (default): refuse SOAP requests whose elements are out of XSD sequence order or unknown to their type, as vCenter does; off: accept any order, as govmomi's simulator does")
	fs.IntVar(&o.nfcReadyMs, "nfc-ready-ms", 100, "how long an ImportVApp lease stays initializing before it is ready, as vCenter prepares the host first")
	fs.BoolVar(&o.nfcHostTLS, "nfc-host-tls", false, "serve ImportVApp lease uploads on a second TLS listener with a certificate of its own (an ESXi host's), named by the device URLs with its sslThumbprint, as vCenter does; vCenter's origin then refuses them")
	fs.StringVar(&o.nfcHostTP, "nfc-host-thumbprint", "", "with --nfc-host-tls: the sslThumbprint leases give (default: the host certificate's SHA-1; none: leave it out)")
	t := &o.topo
	fs.IntVar(&t.Datacenters, "datacenters", 1, "number of datacenters (DC0, DC1, ...)")
	fs.IntVar(&t.Clusters, "clusters", 1, "clusters per datacenter (DC0_C0, ...)")
	fs.IntVar(&t.HostsPerCluster, "hosts", 3, "hosts per cluster")
	fs.IntVar(&t.StandaloneHosts, "standalone-hosts", 0, "standalone hosts per datacenter")
	fs.IntVar(&t.Datastores, "datastores", 1, "datastores per datacenter mounted on every host (LocalDS_0, ...)")
	fs.IntVar(&t.ClusterDatastores, "cluster-datastores", 0, "datastores per cluster, mounted on all of that cluster's hosts only (<cluster>_DS0, ...)")
	fs.IntVar(&t.LocalDatastores, "local-datastores", 0, "host-local datastores per host (<host>_local0, ...)")
	fs.BoolVar(&t.DVS, "dvs", true, "a distributed switch per datacenter (DVS0) with all hosts as members")
	fs.IntVar(&t.Uplinks, "uplinks", 2, "uplink ports of the distributed switch")
	fs.IntVar(&t.DVPortgroups, "dv-portgroups", 1, "distributed port groups on DVS0 (DC0_DVPG0, ...)")
	fs.IntVar(&t.VMs, "vms", 0, "VMs in all, spread round-robin over every host (at most 5000)")
	fs.IntVar(&t.VMsPerHost, "vms-per-host", 0, "VMs per host (instead of --vms)")
	fs.BoolVar(&t.PowerOn, "power-on", true, "power on the VMs created by --vms/--vms-per-host")
	fs.BoolVar(&t.DRS, "drs", true, "DRS enabled (fully automated) on every cluster")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if o.schemaOrder != "strict" && o.schemaOrder != "off" {
		return nil, fmt.Errorf("--schema-order %q: want strict or off", o.schemaOrder)
	}
	if o.nfcReadyMs < 0 {
		return nil, fmt.Errorf("--nfc-ready-ms must be 0 or more")
	}
	if o.nfcHostTP != "" && !o.nfcHostTLS {
		return nil, fmt.Errorf("--nfc-host-thumbprint needs --nfc-host-tls")
	}
	if err := t.validate(); err != nil {
		return nil, err
	}
	if err := requireLoopback(o.listen, "--listen"); err != nil {
		return nil, err
	}
	if err := requireLoopback(o.control, "--control"); err != nil {
		return nil, err
	}
	return o, nil
}

// requireLoopback keeps the simulator and its control endpoint off every network but this machine's.
func requireLoopback(addr, flagName string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%s %q: %v (want host:port)", flagName, addr, err)
	}
	if host == "localhost" {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("%s %q: only loopback addresses (127.0.0.0/8, ::1, localhost) are allowed", flagName, addr)
	}
	return nil
}

func main() {
	start := time.Now()
	o, err := parseFlags(os.Args[1:])
	if err != nil {
		if err == flag.ErrHelp {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "vcsim:", err)
		os.Exit(2)
	}
	if o.quietServer {
		log.SetOutput(ioutil.Discard)
	}
	// run's deferred clean-up (temp folders, CA file) must happen before the exit.
	if err := run(o, start); err != nil {
		fmt.Fprintln(os.Stderr, "vcsim:", err)
		os.Exit(1)
	}
}

// defaultDataDir prefers memory-backed /dev/shm for the simulator's datastore folders.
func defaultDataDir() string {
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		if f, err := ioutil.TempFile("/dev/shm", "vcsim-probe-"); err == nil {
			f.Close()
			os.Remove(f.Name())
			return "/dev/shm"
		}
	}
	return os.TempDir()
}

func run(o *options, start time.Time) error {
	// The simulator makes its datastore folders with ioutil.TempDir(""): steer them.
	if err := os.MkdirAll(o.dataDir, 0o755); err != nil {
		return fmt.Errorf("--data-dir %s: %v", o.dataDir, err)
	}
	os.Setenv("TMPDIR", o.dataDir)

	model := simulator.VPX()
	o.topo.applyToModel(model)
	if o.apiVersion != "" {
		v := o.apiVersion
		if strings.Count(v, ".") == 1 {
			v += ".0"
		}
		model.ServiceContent.About.Version = v
		model.ServiceContent.About.ApiVersion = strings.Join(strings.Split(v, ".")[:2], ".")
		model.ServiceContent.About.FullName = "VMware vCenter Server " + v + " build-vcsim"
	}
	if err := model.Create(); err != nil {
		return fmt.Errorf("creating the model: %v", err)
	}
	defer model.Remove()

	ctx := context.Background()
	inv, cleanup, err := o.topo.build(ctx, model)
	defer cleanup()
	if err != nil {
		return fmt.Errorf("building the topology: %v", err)
	}

	model.Service.Listen = &url.URL{Host: o.listen, User: url.UserPassword(o.username, o.password)}
	var cert *generatedCert
	if o.tls {
		cert, err = newSelfSignedCert()
		if err != nil {
			return fmt.Errorf("generating the TLS certificate: %v", err)
		}
		model.Service.TLS = cert.tlsConfig()
	}

	// Endpoints registered by imported simulator packages: SPBM at /pbm (pbm.go).
	model.Service.RegisterEndpoints = true
	server := model.Service.NewServer()
	defer server.Close()

	// vmread.go: a VM's allocations as vCenter keeps them.
	injector := newInjector(vmConfigFidelity(server.Config.Handler))
	server.Config.Handler = injector
	injector.schemaStrict = o.schemaOrder == "strict"
	injector.nfc.ready = time.Duration(o.nfcReadyMs) * time.Millisecond
	if err := injector.openInternalSession(o.username, o.password); err != nil {
		return err
	}
	// The server is already serving, but nobody knows its port until the ready line:
	// chaining onto httptest's own ConnState hook (it tracks conns for Close) is safe here.
	serverHook := server.Config.ConnState
	server.Config.ConnState = func(c net.Conn, state http.ConnState) {
		injector.noteConnState(c, state)
		if serverHook != nil {
			serverHook(c, state)
		}
	}
	var nfcHostSrv *nfcHost
	if o.nfcHostTLS {
		if nfcHostSrv, err = injector.startNFCHost(o.nfcHostTP); err != nil {
			return err
		}
		defer nfcHostSrv.server.Close()
	}
	for _, spec := range o.faults {
		if _, err := injector.addRuleJSON([]byte(spec)); err != nil {
			return fmt.Errorf("--fault %s: %v", spec, err)
		}
	}

	controlLn, err := net.Listen("tcp", o.control)
	if err != nil {
		return fmt.Errorf("control endpoint: %v", err)
	}
	controlSrv := &http.Server{Handler: injector.controlHandler()}
	go func() { _ = controlSrv.Serve(controlLn) }()
	defer controlSrv.Close()

	host, portStr, _ := net.SplitHostPort(server.URL.Host)
	port := 0
	fmt.Sscanf(portStr, "%d", &port)
	u := *server.URL
	u.User = nil
	line := readyLine{
		URL:        u.String(),
		Host:       host,
		Port:       port,
		Username:   o.username,
		Password:   o.password,
		TLS:        o.tls,
		ControlURL: "http://" + controlLn.Addr().String(),
		APIVersion: model.ServiceContent.About.Version,
		PID:        os.Getpid(),
		DataDir:    o.dataDir,
		Inventory:  inv,
	}
	if nfcHostSrv != nil {
		line.NFCHostURL = nfcHostSrv.url
		line.NFCHostThumbprint = nfcHostSrv.thumbprint
	}
	if cert != nil {
		caFile := o.caFile
		if caFile == "" {
			f, err := ioutil.TempFile("", "vcsim-ca-*.pem")
			if err != nil {
				return fmt.Errorf("writing the CA file: %v", err)
			}
			caFile = f.Name()
			f.Close()
			defer os.Remove(caFile)
		}
		if err := ioutil.WriteFile(caFile, cert.pem, 0o644); err != nil {
			return fmt.Errorf("writing the CA file: %v", err)
		}
		line.CAFile = caFile
		line.Thumbprint = colonHex(sha1Sum(cert.der))
		line.Thumbprint256 = colonHex(sha256Sum(cert.der))
	}
	line.StartupMs = time.Since(start).Milliseconds()
	out, _ := json.Marshal(line)
	fmt.Println(string(out))

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	if o.stdinExit {
		go func() {
			_, _ = io.Copy(ioutil.Discard, os.Stdin)
			stop <- syscall.SIGTERM
		}()
	}
	<-stop
	return nil
}

func sha1Sum(b []byte) []byte   { s := sha1.Sum(b); return s[:] }
func sha256Sum(b []byte) []byte { s := sha256.Sum256(b); return s[:] }

func colonHex(b []byte) string {
	parts := make([]string, len(b))
	for i, c := range b {
		parts[i] = fmt.Sprintf("%02X", c)
	}
	return strings.Join(parts, ":")
}
