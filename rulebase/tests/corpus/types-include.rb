version=2
# an included file shares types and the graph with the includer
rule=inc,second:I %p:@port%
