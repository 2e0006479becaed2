// Command compose-check validates docker-compose files with compose-go, the loader Docker
// Compose itself uses: the Compose specification's JSON schema and its semantic checks
// (dependencies, healthcheck conditions, volumes and networks that exist), with every profile
// enabled so that no service escapes the check. scripts/test runs it on docker-compose.yml.
package main

import (
	"context"
	"fmt"
	"os"
	"sort"

	"github.com/compose-spec/compose-go/v2/cli"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: compose-check <docker-compose.yml>")
		os.Exit(2)
	}
	options, err := cli.NewProjectOptions([]string{os.Args[1]}, cli.WithName("herald"), cli.WithOsEnv, cli.WithProfiles([]string{"*"}))
	if err == nil {
		var project interface{ ServiceNames() []string }
		p, loadErr := cli.ProjectFromOptions(context.Background(), options)
		err = loadErr
		if err == nil {
			project = p
			names := project.ServiceNames()
			sort.Strings(names)
			fmt.Printf("%s: valid, %d services: %v\n", os.Args[1], len(names), names)
			return
		}
	}
	fmt.Fprintf(os.Stderr, "%s: invalid: %v\n", os.Args[1], err)
	os.Exit(1)
}
