// Command keyguest is a wasip1 program that embeds an AWS-key-shaped
// string constant (not a real key), as a careless function would: the
// scan tests build it and expect a credential finding. The constant is
// split here so that this source holds no key-shaped string; the compiler
// joins it.
package main

import "os"

const apiKeyID = "AKIA" + "Q3EGRT5MX7LZ2KWN"

func main() {
	// Used alone, the constant is its own string in the binary, packed
	// between others with no separator.
	os.Stdout.WriteString(apiKeyID)
	os.Stdout.WriteString("\n")
}
