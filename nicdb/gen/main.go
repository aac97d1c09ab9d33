// Command gen writes docs/nicdb.md from the embedded driver data. It runs
// from the nicdb directory through go generate (see nicdb.go).
package main

import (
	"flag"
	"log"
	"os"

	"github.com/xdpcache/xdpcache/nicdb"
)

func main() {
	out := flag.String("o", "../docs/nicdb.md", "file to write")
	flag.Parse()
	db, err := nicdb.Load()
	if err != nil {
		log.Fatal(err)
	}
	if err := os.WriteFile(*out, []byte(db.Markdown()), 0o644); err != nil {
		log.Fatal(err)
	}
}
