package web

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/directops/nbp/service/api"
)

// Member is a person who may use the pages: a WeCom userid, its role and
// its team or branch.
type Member struct {
	UserID string
	Role   api.Role
	Team   string
}

// Members are the pages' users by WeCom userid. Managers must be listed;
// a member of the corporation who is not listed logs in as an agent
// without a team.
type Members map[string]Member

// ParseMembers reads a members file, a CSV with the header
// userid,role,team (role agent or manager; team may be empty). Every
// problem is reported at once, by line.
func ParseMembers(r io.Reader) (Members, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = 3
	head, err := cr.Read()
	if err != nil {
		return nil, fmt.Errorf("members: header: %w", err)
	}
	if strings.Join(head, ",") != "userid,role,team" {
		return nil, errors.New("members: the header must be userid,role,team")
	}
	m := Members{}
	var probs []string
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			probs = append(probs, err.Error())
			if _, ok := err.(*csv.ParseError); ok {
				continue
			}
			break
		}
		line, _ := cr.FieldPos(0)
		mb := Member{UserID: rec[0], Role: api.Role(rec[1]), Team: rec[2]}
		switch {
		case !api.ValidAgentID(mb.UserID):
			probs = append(probs, fmt.Sprintf("line %d: userid must be a WeCom userid", line))
		case mb.Role != api.RoleAgent && mb.Role != api.RoleManager:
			probs = append(probs, fmt.Sprintf("line %d: role must be agent or manager", line))
		case !api.ValidTeam(mb.Team):
			probs = append(probs, fmt.Sprintf("line %d: team must be at most %d characters, without | or control characters", line, api.MaxTeamRunes))
		case m[mb.UserID].UserID != "":
			probs = append(probs, fmt.Sprintf("line %d: userid listed twice", line))
		default:
			m[mb.UserID] = mb
		}
	}
	if len(probs) > 0 {
		return nil, fmt.Errorf("members: %s", strings.Join(probs, "; "))
	}
	return m, nil
}

// member returns who a userid logs in as.
func (m Members) member(userID string) Member {
	if mb, ok := m[userID]; ok {
		return mb
	}
	return Member{UserID: userID, Role: api.RoleAgent}
}

// The demo's two logins (Config.Demo).
var demoMembers = Members{
	"demo-agent":   {UserID: "demo-agent", Role: api.RoleAgent, Team: "直营一组"},
	"demo-manager": {UserID: "demo-manager", Role: api.RoleManager},
}
