// Command gen writes docs/nicdb.md from the embedded driver data.
package main

import (
	"log"
	"os"

	"github.com/xdpcache/xdpcache/nicdb"
)

func main() {
	db, err := nicdb.Load()
	if err != nil {
		log.Fatal(err)
	}
	if err := os.WriteFile("../docs/nicdb.md", []byte(db.Markdown()), 0o644); err != nil {
		log.Fatal(err)
	}
}
