// Command deploy-check validates Herald's deployment files offline, for scripts/test:
//
//	deploy-check compose <docker-compose.yml>   validates with compose-go, the loader Docker
//	                                            Compose itself uses (the Compose schema and its
//	                                            semantic checks), every profile on
//	deploy-check kustomize <dir>                renders a kustomization with the kustomize API
//	                                            (kustomize's own library) to stdout, for the
//	                                            schema check in tests/interop/k8s_validate.py
package main

import (
	"context"
	"fmt"
	"os"
	"sort"

	"github.com/compose-spec/compose-go/v2/cli"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: deploy-check compose <docker-compose.yml> | kustomize <dir>")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "compose":
		err = compose(os.Args[2])
	case "kustomize":
		err = kustomize(os.Args[2])
	default:
		err = fmt.Errorf("unknown check %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: invalid: %v\n", os.Args[2], err)
		os.Exit(1)
	}
}

func compose(path string) error {
	options, err := cli.NewProjectOptions([]string{path}, cli.WithName("herald"), cli.WithOsEnv, cli.WithProfiles([]string{"*"}))
	if err != nil {
		return err
	}
	project, err := cli.ProjectFromOptions(context.Background(), options)
	if err != nil {
		return err
	}
	names := project.ServiceNames()
	sort.Strings(names)
	fmt.Printf("%s: valid, %d services: %v\n", path, len(names), names)
	return nil
}

func kustomize(dir string) error {
	resources, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		return err
	}
	out, err := resources.AsYaml()
	if err != nil {
		return err
	}
	_, err = os.Stdout.Write(out)
	return err
}
