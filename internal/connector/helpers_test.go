package connector

import "reflect"

func reflectTypeOf(ptr any) reflect.Type { return reflect.TypeOf(ptr).Elem() }
