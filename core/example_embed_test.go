package core_test

import (
	"context"
	"fmt"
	"math"

	"github.com/athena-edge/athena-edge/core"
)

func ExampleHashEmbedder() {
	e := core.NewHashEmbedder(core.HashEmbedderConfig{}) // zero config: Dim 768
	vecs, err := e.Embed(context.Background(), []string{"Optimizing the database", ""})
	if err != nil {
		panic(err)
	}
	for _, v := range vecs {
		var ss float64
		for _, x := range v {
			ss += float64(x) * float64(x)
		}
		fmt.Println(e.Model(), e.Dim(), len(v), math.Abs(math.Sqrt(ss)-1) < 1e-5)
	}
	// Output:
	// athena-hash-v1 768 768 true
	// athena-hash-v1 768 768 true
}

func ExampleTokenize() {
	fmt.Printf("%q\n", core.Tokenize(`Hello, Wörld! "a" OR b* NEAR(x_y) col:foo`))
	fmt.Printf("%q\n", core.Terms("the cat and THE hat"))
	fmt.Println(core.NormalizeText("  Straße—CAFÉ  "))
	// Output:
	// ["hello" "wörld" "a" "or" "b" "near" "x" "y" "col" "foo"]
	// ["the" "cat" "and" "hat"]
	// straße café
}
