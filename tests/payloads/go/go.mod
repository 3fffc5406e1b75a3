module kmpayloads

go 1.19
