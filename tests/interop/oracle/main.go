// Command oracle drives etcd 3.4's own WAL package (go.etcd.io/etcd/wal) for the
// interoperability suite (tests/interop.rs, tests/interop_server.rs). It is our
// code calling etcd's package; build it in GOPATH mode against Debian's
// golang-etcd-server-dev:
//
//	GO111MODULE=off GOPATH=/usr/share/gocode go build -o oracle ./tests/interop/oracle
//
// Modes:
//
//	oracle write SCENARIO.json DIR       execute a scenario with wal.Create/Save/...
//	oracle read DIR SNAPINDEX SNAPTERM   print the corpus .expected.json layout
//	oracle repair DIR                    wal.Repair, print {"repaired": bool}
//	oracle bench-append DIR ENTRY_BYTES BATCH SECONDS MAX_SAVES SEGMENT_BYTES [nosync]
//	                                     time wal.Save of BATCH entries (a changing
//	                                     hard state, so every save syncs) for SECONDS
//	                                     or MAX_SAVES saves (0: no limit); print JSON.
//	                                     nosync: SetUnsafeNoFsync (pure CPU)
//	oracle bench-read DIR                time OpenForRead + ReadAll; print JSON
//
// The bench modes are walctl bench's etcd column (crates/walctl/src/bench.rs).
package main

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.etcd.io/etcd/pkg/fileutil"
	"go.etcd.io/etcd/raft/raftpb"
	"go.etcd.io/etcd/wal"
	"go.etcd.io/etcd/wal/walpb"
	"go.uber.org/zap"
)

// scenario is the JSON the Rust side serializes (see tests/interop.rs).
type scenario struct {
	Name        string  `json:"name"`
	SegmentSize int64   `json:"segment_size"`
	MetadataHex *string `json:"metadata_hex"`
	Ops         []op    `json:"ops"`
}

type op struct {
	Op        string     `json:"op"`
	HardState *hardState `json:"hardstate"`
	Entries   []entry    `json:"entries"`
	Index     uint64     `json:"index"`
	Term      uint64     `json:"term"`
}

type hardState struct {
	Term   uint64 `json:"term"`
	Vote   uint64 `json:"vote"`
	Commit uint64 `json:"commit"`
}

type entry struct {
	Index   uint64  `json:"index"`
	Term    uint64  `json:"term"`
	Type    int32   `json:"type"`
	DataHex *string `json:"data_hex"`
}

func die(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "oracle: "+format+"\n", args...)
	os.Exit(1)
}

// decodeHex keeps Go's nil-vs-empty distinction: null is nil, "" is []byte{}.
func decodeHex(s *string) []byte {
	if s == nil {
		return nil
	}
	if *s == "" {
		return []byte{}
	}
	b, err := hex.DecodeString(*s)
	if err != nil {
		die("bad hex: %v", err)
	}
	return b
}

func main() {
	if len(os.Args) < 2 {
		die("usage: oracle write SCENARIO.json DIR | read DIR SNAPINDEX SNAPTERM | repair DIR | bench-append ... | bench-read DIR")
	}
	switch os.Args[1] {
	case "write":
		if len(os.Args) != 4 {
			die("usage: oracle write SCENARIO.json DIR")
		}
		write(os.Args[2], os.Args[3])
	case "read":
		if len(os.Args) != 5 {
			die("usage: oracle read DIR SNAPINDEX SNAPTERM")
		}
		index, err := strconv.ParseUint(os.Args[3], 10, 64)
		if err != nil {
			die("bad index: %v", err)
		}
		term, err := strconv.ParseUint(os.Args[4], 10, 64)
		if err != nil {
			die("bad term: %v", err)
		}
		read(os.Args[2], walpb.Snapshot{Index: index, Term: term})
	case "repair":
		if len(os.Args) != 3 {
			die("usage: oracle repair DIR")
		}
		fmt.Printf("{\"repaired\": %v}\n", wal.Repair(zap.NewNop(), os.Args[2]))
	case "bench-append":
		if len(os.Args) != 8 && !(len(os.Args) == 9 && os.Args[8] == "nosync") {
			die("usage: oracle bench-append DIR ENTRY_BYTES BATCH SECONDS MAX_SAVES SEGMENT_BYTES [nosync]")
		}
		benchAppend(os.Args[2], atoi(os.Args[3]), atoi(os.Args[4]), atof(os.Args[5]), atoi(os.Args[6]), atoi(os.Args[7]), len(os.Args) == 9)
	case "bench-read":
		if len(os.Args) != 3 {
			die("usage: oracle bench-read DIR")
		}
		benchRead(os.Args[2])
	default:
		die("unknown mode %q", os.Args[1])
	}
}

func write(path, dir string) {
	text, err := os.ReadFile(path)
	if err != nil {
		die("%v", err)
	}
	var sc scenario
	if err := json.Unmarshal(text, &sc); err != nil {
		die("parsing %s: %v", path, err)
	}
	lg := zap.NewNop()
	wal.SegmentSizeBytes = sc.SegmentSize
	w, err := wal.Create(lg, dir, decodeHex(sc.MetadataHex))
	if err != nil {
		die("create: %v", err)
	}
	closed := false
	for i, o := range sc.Ops {
		switch o.Op {
		case "save":
			var st raftpb.HardState
			if o.HardState != nil {
				st = raftpb.HardState{Term: o.HardState.Term, Vote: o.HardState.Vote, Commit: o.HardState.Commit}
			}
			ents := make([]raftpb.Entry, 0, len(o.Entries))
			for _, e := range o.Entries {
				ents = append(ents, raftpb.Entry{
					Index: e.Index, Term: e.Term, Type: raftpb.EntryType(e.Type), Data: decodeHex(e.DataHex),
				})
			}
			err = w.Save(st, ents)
		case "snapshot":
			err = w.SaveSnapshot(walpb.Snapshot{Index: o.Index, Term: o.Term})
		case "release_lock_to":
			err = w.ReleaseLockTo(o.Index)
		case "reopen":
			if err = w.Close(); err != nil {
				break
			}
			w, err = wal.Open(lg, dir, walpb.Snapshot{Index: o.Index, Term: o.Term})
			if err != nil {
				break
			}
			_, _, _, err = w.ReadAll()
		case "close":
			err = w.Close()
			closed = true
		default:
			die("op %d: unknown op %q", i, o.Op)
		}
		if err != nil {
			die("op %d (%s): %v", i, o.Op, err)
		}
		if closed {
			break
		}
	}
	if !closed {
		if err := w.Close(); err != nil {
			die("close: %v", err)
		}
	}
}

func jstr(v interface{}) string {
	b, err := json.Marshal(v)
	if err != nil {
		die("json: %v", err)
	}
	return string(b)
}

func jerr(err error) string {
	if err == nil {
		return "null"
	}
	return jstr(err.Error())
}

func jstate(st raftpb.HardState) string {
	return fmt.Sprintf(`{"term":%d,"vote":%d,"commit":%d}`, st.Term, st.Vote, st.Commit)
}

func read(dir string, snap walpb.Snapshot) {
	lg := zap.NewNop()
	// Write-mode opens start a file pipeline that preallocates the next segment:
	// keep it small; it does not change what is read.
	wal.SegmentSizeBytes = 64 * 1024

	var md []byte
	var st raftpb.HardState
	var ents []raftpb.Entry
	var readAllErr error
	w, openErr := wal.OpenForRead(lg, dir, snap)
	if openErr == nil {
		md, st, ents, readAllErr = w.ReadAll()
		w.Close()
	}
	verifyErr := wal.Verify(lg, dir, snap)
	vse, vseErr := wal.ValidSnapshotEntries(lg, dir)
	names, _ := fileutil.ReadDir(dir)

	// Write mode on a throw-away copy: ReadAll zeroes the tail after the last record.
	tmp, err := os.MkdirTemp("", "oracle-write-mode-")
	if err != nil {
		die("%v", err)
	}
	defer os.RemoveAll(tmp)
	cp := filepath.Join(tmp, "wal")
	copyDir(dir, cp)
	var st2 raftpb.HardState
	var ents2 []raftpb.Entry
	var readAllErr2 error
	w2, openErr2 := wal.Open(lg, cp, snap)
	if openErr2 == nil {
		_, st2, ents2, readAllErr2 = w2.ReadAll()
		w2.Close()
	}

	var b strings.Builder
	b.WriteString("{\n")
	fmt.Fprintf(&b, " \"snapshot\": {\"index\":%d,\"term\":%d},\n", snap.Index, snap.Term)
	fmt.Fprintf(&b, " \"open_error\": %s,\n", jerr(openErr))
	fmt.Fprintf(&b, " \"metadata_hex\": %s,\n", jstr(hex.EncodeToString(md)))
	fmt.Fprintf(&b, " \"metadata_nil\": %v,\n", md == nil)
	fmt.Fprintf(&b, " \"hardstate\": %s,\n", jstate(st))
	b.WriteString(" \"entries\": [")
	for i, e := range ents {
		if i > 0 {
			b.WriteString(",")
		}
		sum := sha256.Sum256(e.Data)
		fmt.Fprintf(&b, "\n  {\"index\":%d,\"term\":%d,\"type\":%d,\"data_len\":%d,\"data_nil\":%v,\"data_sha256\":\"%s\"}",
			e.Index, e.Term, int32(e.Type), len(e.Data), e.Data == nil, hex.EncodeToString(sum[:]))
	}
	if len(ents) > 0 {
		b.WriteString("\n ")
	}
	b.WriteString("],\n")
	fmt.Fprintf(&b, " \"readall_error\": %s,\n", jerr(readAllErr))
	fmt.Fprintf(&b, " \"verify\": {\"error\":%s},\n", jerr(verifyErr))
	b.WriteString(" \"valid_snapshot_entries\": [")
	for i, s := range vse {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, "\n  {\"index\":%d,\"term\":%d}", s.Index, s.Term)
	}
	if len(vse) > 0 {
		b.WriteString("\n ")
	}
	b.WriteString("],\n")
	fmt.Fprintf(&b, " \"valid_snapshot_entries_error\": %s,\n", jerr(vseErr))
	b.WriteString(" \"files\": [")
	for i, n := range names {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, "\n  %s", jstr(n))
	}
	if len(names) > 0 {
		b.WriteString("\n ")
	}
	b.WriteString("],\n")
	fmt.Fprintf(&b, " \"write_mode\": {\"open_error\":%s,\"readall_error\":%s,\"hardstate\":%s,\"entries_count\":%d,\"same_as_read_mode\":%v}\n",
		jerr(openErr2), jerr(readAllErr2), jstate(st2), len(ents2), reflect.DeepEqual(ents, ents2))
	b.WriteString("}\n")
	os.Stdout.WriteString(b.String())
}

// copyDir copies the regular files of from into a new directory to.
func copyDir(from, to string) {
	if err := os.MkdirAll(to, 0o700); err != nil {
		die("%v", err)
	}
	names, err := fileutil.ReadDir(from)
	if err != nil {
		die("%v", err)
	}
	for _, n := range names {
		src := filepath.Join(from, n)
		fi, err := os.Stat(src)
		if err != nil || !fi.Mode().IsRegular() {
			continue
		}
		in, err := os.Open(src)
		if err != nil {
			die("%v", err)
		}
		out, err := os.Create(filepath.Join(to, n))
		if err != nil {
			die("%v", err)
		}
		if _, err := io.Copy(out, in); err != nil {
			die("copying %s: %v", src, err)
		}
		in.Close()
		out.Close()
	}
}

func atoi(s string) int64 {
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		die("bad number %q: %v", s, err)
	}
	return v
}

func atof(s string) float64 {
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		die("bad number %q: %v", s, err)
	}
	return v
}

// vmHWM is the process's peak resident set size in bytes (0 if unknown).
func vmHWM() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "VmHWM:") {
			fields := strings.Fields(line)
			if len(fields) >= 2 {
				kb, _ := strconv.ParseInt(fields[1], 10, 64)
				return kb * 1024
			}
		}
	}
	return 0
}

func percentile(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(p * float64(len(sorted)-1))
	return sorted[i]
}

// benchAppend is etcd's BenchmarkWrite*Entry* loop with a hard state that changes
// on every save (so every save fdatasyncs), timed per save.
func benchAppend(dir string, entryBytes, batch int64, seconds float64, maxSaves, segment int64, nosync bool) {
	lg := zap.NewNop()
	wal.SegmentSizeBytes = segment
	w, err := wal.Create(lg, dir, []byte("walctl bench"))
	if err != nil {
		die("create: %v", err)
	}
	if nosync {
		w.SetUnsafeNoFsync()
	}
	data := make([]byte, entryBytes)
	for i := range data {
		data[i] = byte(i*131 + 7)
	}
	ents := make([]raftpb.Entry, batch)
	lat := make([]float64, 0, 1<<16)
	var index uint64
	limit := time.Duration(seconds * float64(time.Second))
	start := time.Now()
	var saves int64
	for {
		for i := range ents {
			index++
			ents[i] = raftpb.Entry{Term: 1, Index: index, Type: raftpb.EntryNormal, Data: data}
		}
		st := raftpb.HardState{Term: 1, Vote: 1, Commit: index}
		t0 := time.Now()
		if err := w.Save(st, ents); err != nil {
			die("save: %v", err)
		}
		lat = append(lat, float64(time.Since(t0).Nanoseconds())/1000)
		saves++
		if (maxSaves > 0 && saves >= maxSaves) || time.Since(start) >= limit {
			break
		}
	}
	elapsed := time.Since(start).Seconds()
	if err := w.Close(); err != nil {
		die("close: %v", err)
	}
	sort.Float64s(lat)
	fmt.Printf("{\"saves\":%d,\"entries\":%d,\"seconds\":%g,\"p50_us\":%g,\"p99_us\":%g,\"max_us\":%g}\n",
		saves, saves*batch, elapsed, percentile(lat, 0.50), percentile(lat, 0.99), percentile(lat, 1))
}

// benchRead times etcd's read path: OpenForRead and ReadAll from the empty snapshot.
func benchRead(dir string) {
	lg := zap.NewNop()
	start := time.Now()
	w, err := wal.OpenForRead(lg, dir, walpb.Snapshot{})
	if err != nil {
		die("open: %v", err)
	}
	_, _, ents, err := w.ReadAll()
	if err != nil {
		die("read_all: %v", err)
	}
	elapsed := time.Since(start).Seconds()
	var bytes int64
	for _, e := range ents {
		bytes += int64(len(e.Data))
	}
	hwm := vmHWM()
	w.Close()
	fmt.Printf("{\"seconds\":%g,\"entries\":%d,\"entry_bytes\":%d,\"peak_rss_bytes\":%d}\n",
		elapsed, len(ents), bytes, hwm)
}
